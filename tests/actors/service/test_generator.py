"""GeneratorCore without Ray: validation errors name the field, generation matches the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.service import wire
from actors.service.errors import (
    DtypeError,
    MalformedRequestError,
    NonFiniteError,
    SampleCountError,
    ShapeError,
    UnknownModelError,
    VocabularyError,
)
from actors.service.generator import GeneratorCore
from actors.service.generator_client import LocalGeneratorClient
from actors.service.messages import GenerateRequest
from actors.service.served import load_served_model
from actors.service.validation import prepare
from duet.checkpoint import load_checkpoint

from .conftest import CLICK_KEY, HYPER_KEY, IMAGE_KEY, NUM_ITEMS, REALTIME_SIZE


@pytest.fixture(scope="module")
def core(checkpoints) -> GeneratorCore:
    return GeneratorCore.from_checkpoints([str(p) for p in checkpoints.values()])


def reference(ckpt, items) -> list[tuple[np.ndarray, np.ndarray]]:
    """The in-process PPG output for one device, left-padded to realtime_size as in training."""
    model, _ = load_checkpoint(ckpt)
    x = torch.zeros(1, REALTIME_SIZE, dtype=torch.long)
    x[0, REALTIME_SIZE - len(items) :] = torch.tensor(items)
    with torch.no_grad():
        params = model.generate(*model.device_inputs(x), 1)
    return [(w[0].numpy(), b[0].numpy()) for w, b in params]


def test_keys_and_description(core):
    assert core.keys() == sorted([CLICK_KEY, IMAGE_KEY, HYPER_KEY])
    desc = {d["key"]: d for d in core.describe()}
    assert desc[CLICK_KEY]["param_shapes"] == [{"weight": [32, 32], "bias": [32]}] * 2
    assert desc[IMAGE_KEY]["image_shape"] == (1, 48, 48) and desc[IMAGE_KEY]["max_samples"] == 1
    assert len(desc[CLICK_KEY]["version"]) == 12


def test_raw_and_embedding_upload_match_reference(core, checkpoints):
    model, _ = load_checkpoint(checkpoints[CLICK_KEY])
    emb = model.device_inputs(torch.tensor([[4, 9, 2]]))[0][0].detach().numpy()
    reqs = [
        GenerateRequest("a", CLICK_KEY, items=[4, 9, 2]),
        GenerateRequest("b", CLICK_KEY, items=[0, 0, 4, 9, 2], dtype="float16"),  # client padding
        GenerateRequest("c", CLICK_KEY, embeddings=emb),
        GenerateRequest("d", CLICK_KEY, items=list(range(1, 11))),  # a different batch-mate
    ]
    out = LocalGeneratorClient(core).generate(reqs)
    ref = reference(checkpoints[CLICK_KEY], [4, 9, 2])
    for (w, b), (rw, rb) in zip(out[0].params, ref, strict=True):
        np.testing.assert_allclose(w, rw, atol=1e-5)
        np.testing.assert_allclose(b, rb, atol=1e-5)
    for (w, _), (rw, _) in zip(out[1].params, ref, strict=True):
        assert w.dtype == np.float16
        np.testing.assert_allclose(w.astype(np.float32), rw, atol=1e-3, rtol=1e-3)
    for (w, _), (rw, _) in zip(out[2].params, ref, strict=True):
        np.testing.assert_allclose(w, rw, atol=1e-5)
    assert out[0].download_bytes == 2 * out[1].download_bytes == 4 * (32 * 32 + 32) * 2
    assert (out[0].upload_bytes, out[2].upload_bytes) == (3 * 4, 3 * 32 * 4)
    assert {r.batch_size for r in out} == {4} and out[0].model_version == core.models[
        CLICK_KEY
    ].version


def test_images_and_hypernet(core):
    pixels = torch.rand(1, 48, 48)
    served = core.models[IMAGE_KEY]
    feats = served.model.device_inputs(pixels[None])[0][0].numpy()  # (1, F)
    raw, up, hyper = core.generate(
        [
            GenerateRequest("a", IMAGE_KEY, pixels=pixels.numpy()),
            GenerateRequest("b", IMAGE_KEY, embeddings=feats),
            GenerateRequest("c", HYPER_KEY),
        ]
    )
    for (w, b), (w2, b2) in zip(raw.params, up.params, strict=True):
        np.testing.assert_allclose(w, w2, atol=1e-5)
        np.testing.assert_allclose(b, b2, atol=1e-5)
    assert [w.shape for w, _ in raw.params] == [(128, 576), (7, 128)]
    assert hyper.upload_bytes == 0 and len(hyper.params) == 2


BAD = [
    (dict(model_key="nope", items=[1]), UnknownModelError, "model_key"),
    (dict(items=[NUM_ITEMS + 1]), VocabularyError, "items"),
    (dict(items=[-1, 3]), VocabularyError, "items"),
    (dict(items=[]), SampleCountError, "items"),
    (dict(items=[0, 0, 0]), SampleCountError, "items"),
    (dict(items=list(range(1, REALTIME_SIZE + 2))), SampleCountError, "items"),
    (dict(items=[1.5, 2]), DtypeError, "items"),
    (dict(items=[True]), DtypeError, "items"),
    (dict(items=["a"]), DtypeError, "items"),
    (dict(items=[[1, 2]]), ShapeError, "items"),
    (dict(items=[[1, 2], [3]]), ShapeError, "items"),
    (dict(embeddings=[[float("nan")] * 32]), NonFiniteError, "embeddings"),
    (dict(embeddings=[[float("inf")] * 32]), NonFiniteError, "embeddings"),
    (dict(embeddings=[[0.0] * 31]), ShapeError, "embeddings"),
    (dict(embeddings=np.zeros((0, 32))), SampleCountError, "embeddings"),
    (dict(embeddings=np.zeros((REALTIME_SIZE + 1, 32))), SampleCountError, "embeddings"),
    (dict(items=[1], embeddings=[[0.0] * 32]), MalformedRequestError, "samples"),
    (dict(pixels=np.zeros((1, 48, 48))), MalformedRequestError, "pixels"),
    (dict(), MalformedRequestError, "samples"),
    (dict(items=[1], dtype="bfloat16"), DtypeError, "dtype"),
    (dict(items=[1], device_id=""), MalformedRequestError, "device_id"),
    (dict(items=[1], device_id=7), MalformedRequestError, "device_id"),
]


@pytest.mark.parametrize(("fields", "error", "field"), BAD)
def test_bad_requests_raise_typed_errors(core, fields, error, field):
    req = GenerateRequest(**({"device_id": "d", "model_key": CLICK_KEY} | fields))
    with pytest.raises(error) as info:
        core.generate([req])
    assert info.value.field == field and 400 <= info.value.status < 500


def test_bad_image_requests(core):
    with pytest.raises(ShapeError, match=r"\(1, 48, 48\)"):
        prepare(core.models, GenerateRequest("d", IMAGE_KEY, pixels=np.zeros((3, 48, 48))))
    with pytest.raises(NonFiniteError):
        prepare(core.models, GenerateRequest("d", IMAGE_KEY, pixels=np.full((1, 48, 48), np.nan)))


def test_from_json_refuses_unknown_and_missing_fields():
    with pytest.raises(MalformedRequestError) as info:
        GenerateRequest.from_json({"device_id": "d", "model_key": "k", "itemz": [1]})
    assert info.value.field == "itemz"
    with pytest.raises(MalformedRequestError, match="model_key"):
        GenerateRequest.from_json({"device_id": "d"})
    with pytest.raises(MalformedRequestError):
        GenerateRequest.from_json([1, 2])


def test_base_checkpoint_is_refused(tmp_path):
    from duet.builders import sequence_umn
    from duet.checkpoint import save_checkpoint
    from duet.model import DeviceModel

    save_checkpoint(DeviceModel(sequence_umn("gru4rec", "base", 5)), tmp_path)
    with pytest.raises(ValueError, match="generates no parameters"):
        load_served_model(tmp_path)


def test_frame_round_trip(core):
    req = GenerateRequest("a", CLICK_KEY, items=np.array([3, 4], np.int32), dtype="float16")
    decoded = wire.decode_request(wire.encode_request(req), wire.FRAME_TYPE)
    assert decoded.items.tolist() == [3, 4] and decoded.upload_bytes == 8
    [resp] = core.generate([decoded])
    body = wire.encode_response(resp, wire.FRAME_TYPE)
    back = wire.decode_response(body, wire.FRAME_TYPE)
    assert len(body) < resp.download_bytes + 512
    for (w, b), (w2, b2) in zip(resp.params, back.params, strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2) and w2.dtype == np.float16


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"DUT1",
        b"DUT1\xff\xff\xff\xff",
        b"XXXX\x00\x00\x00\x00",
        wire.MAGIC + b"\x02\x00\x00\x00[]",
        wire.encode_frame({"device_id": "a", "model_key": "k"}, {"items": np.arange(3)})[:-1],
        wire.encode_frame({"device_id": "a", "model_key": "k"}, {"items": np.arange(3)}) + b"\0",
    ],
)
def test_bad_frames(body):
    with pytest.raises(MalformedRequestError):
        wire.decode_request(body, wire.FRAME_TYPE)


def test_columnar_batch_matches_single_requests(core, checkpoints):
    from actors.service.messages import GenerateBatchRequest

    rows = np.array([[0, 0, 4, 9, 2], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    batch = core.generate_batch(GenerateBatchRequest(["a", "b", "c"], CLICK_KEY, items=rows))
    singles = core.generate(
        [GenerateRequest(f"s{i}", CLICK_KEY, items=r) for i, r in enumerate(rows)]
    )
    for got, want in zip(batch.split(), singles, strict=True):
        for (w, b), (w2, b2) in zip(got.params, want.params, strict=True):
            np.testing.assert_allclose(w, w2, atol=1e-5)
            np.testing.assert_allclose(b, b2, atol=1e-5)
    assert batch.upload_bytes.tolist() == [12, 20, 4]
    model = core.models[CLICK_KEY].model
    emb = model.device_inputs(torch.from_numpy(rows))[0].numpy()  # (3, 5, E), left-padded
    up = core.generate_batch(
        GenerateBatchRequest(
            ["a", "b", "c"], CLICK_KEY, embeddings=emb, lengths=[3, 5, 1], dtype="float16"
        )
    )
    np.testing.assert_allclose(up.params[0][0].astype(np.float32), batch.params[0][0], atol=2e-3)


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        (dict(items=np.array([[1, 2], [3, NUM_ITEMS + 1]])), VocabularyError, "items[1]"),
        (dict(items=np.array([[1, 2], [0, 0]])), SampleCountError, "items[1]"),
        (dict(items=np.ones((2, REALTIME_SIZE + 1), int)), SampleCountError, "items[0]"),
        (dict(items=np.ones((3, 2), int)), ShapeError, "items"),
        (dict(embeddings=np.full((2, 1, 32), np.nan)), NonFiniteError, "embeddings[0]"),
        (dict(embeddings=np.zeros((2, 1, 32)), lengths=[1, 0]), SampleCountError, "embeddings[1]"),
        (dict(items=np.ones((2, 2), int), dtype="int8"), DtypeError, "dtype"),
        (dict(items=np.ones((2, 2), int), model_key="x"), UnknownModelError, "model_key"),
    ],
)
def test_columnar_batch_errors_name_the_row(core, fields, error, field):
    from actors.service.messages import GenerateBatchRequest

    with pytest.raises(error) as info:
        core.generate_batch(
            GenerateBatchRequest(**({"device_ids": ["a", "b"], "model_key": CLICK_KEY} | fields))
        )
    assert info.value.field == field


def test_batch_response_is_one_flat_buffer(core):
    """W0, b0, W1, b1 back to back per device row; params, split and torch_params are views or
    float32 copies of it, and float16 is the float32 result rounded."""
    from actors.service.messages import GenerateBatchRequest

    rows = np.array([[0, 4, 9, 2], [1, 2, 3, 4]])
    f32, f16 = (
        core.generate_batch(GenerateBatchRequest(["a", "b"], CLICK_KEY, items=rows, dtype=dt))
        for dt in ("float32", "float16")
    )
    assert f32.flat.shape == (2, 2 * (32 * 32 + 32)) and f32.flat.flags.c_contiguous
    assert f16.flat.dtype == np.float16 and f16.download_bytes == f16.flat[0].nbytes
    np.testing.assert_array_equal(f16.flat, f32.flat.astype(np.float16))
    (w0, b0), (w1, b1) = f32.params
    np.testing.assert_array_equal(
        f32.flat[1], np.concatenate([w0[1].ravel(), b0[1], w1[1].ravel(), b1[1]])
    )
    assert all(np.shares_memory(w, f32.flat) for w, _ in f32.split()[1].params)
    for (tw, tb), (w, b) in zip(f16.torch_params(), f16.params, strict=True):
        assert tw.dtype == torch.float32 and tw.shape == (2, *w.shape[1:])
        np.testing.assert_array_equal(tb.numpy(), b.astype(np.float32))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (dict(items=[NUM_ITEMS + 1]), VocabularyError),
        (dict(items=[0, 0]), SampleCountError),
        (dict(items=list(range(1, REALTIME_SIZE + 2))), SampleCountError),
        (dict(embeddings=[[float("nan")] * 32]), NonFiniteError),
    ],
)
def test_a_single_request_is_checked_as_a_batch_of_one(core, fields, error):
    """One validation path: a request and the columnar batch of its one row raise the same
    error with the same message, the batch naming the row."""
    from actors.service.messages import GenerateBatchRequest

    [(name, value)] = fields.items()
    with pytest.raises(error) as one:
        prepare(core.models, GenerateRequest("d", CLICK_KEY, **fields))
    with pytest.raises(error) as batch:
        core.generate_batch(
            GenerateBatchRequest(["d"], CLICK_KEY, **{name: np.asarray(value)[None]})
        )
    assert (one.value.field, batch.value.field) == (name, f"{name}[0]")
    assert str(batch.value).replace("[0]", "") == str(one.value)
