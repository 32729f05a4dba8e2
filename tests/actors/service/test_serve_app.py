"""The generator on a real local Ray Serve: HTTP (JSON, binary) and handle agree with the
in-process PPG; fuzzed bad requests get 4xx / typed errors and the replica keeps serving."""

from __future__ import annotations

import json
import math
import socket

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.service import wire
from actors.service.errors import GeneratorError
from actors.service.messages import GenerateRequest
from duet.checkpoint import load_checkpoint

from .conftest import CLICK_KEY, HYPER_KEY, IMAGE_KEY, NUM_ITEMS, REALTIME_SIZE

ray = pytest.importorskip("ray")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.ray

ITEMS = [5, 17, 3, 42]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(checkpoints):
    """Ray + Serve started once for the module, on 127.0.0.1 and a free port."""
    from ray import serve

    from actors.service.serve_app import APP_NAME, build_app

    port = free_port()
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = {
            "checkpoints": {k: str(v) for k, v in checkpoints.items()},
            "max_body_bytes": 64 * 1024,
        }
        handle = serve.run(
            build_app(args),
            name=APP_NAME,
            route_prefix="/",
            logging_config={"enable_access_log": False},
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield handle, client
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(checkpoints):
    """In-process PPG output for ITEMS (left-padded to realtime_size, as training feeds it)."""
    model, _ = load_checkpoint(checkpoints[CLICK_KEY])
    x = torch.zeros(1, REALTIME_SIZE, dtype=torch.long)
    x[0, -len(ITEMS) :] = torch.tensor(ITEMS)
    with torch.no_grad():
        return [(w[0].numpy(), b[0].numpy()) for w, b in model.generate(*model.device_inputs(x), 1)]


def assert_params(params, ref, dtype="float32"):
    tol = {"float32": 1e-5, "float16": 2e-3}[dtype]  # float16: 11-bit mantissa, |values| < 1
    assert len(params) == len(ref)
    for (w, b), (rw, rb) in zip(params, ref, strict=True):
        assert w.dtype == np.dtype(dtype) and w.shape == rw.shape
        np.testing.assert_allclose(w.astype(np.float32), rw, atol=tol, rtol=tol)
        np.testing.assert_allclose(b.astype(np.float32), rb, atol=tol, rtol=tol)


def test_health_and_models(app):
    _, client = app
    assert client.get("/healthz").json() == {"status": "ok", "models": 3}
    models = {m["key"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {CLICK_KEY, IMAGE_KEY, HYPER_KEY}
    assert models[CLICK_KEY]["kind"] == "clicks" and models[IMAGE_KEY]["kind"] == "images"
    assert models[IMAGE_KEY]["param_shapes"][0] == {"weight": [128, 576], "bias": [128]}
    assert client.get("/nope").status_code == 404


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_http_json_matches_in_process(app, reference, dtype):
    _, client = app
    r = client.post(
        "/v1/generate",
        json={"device_id": "d1", "model_key": CLICK_KEY, "items": ITEMS, "dtype": dtype},
    )
    assert r.status_code == 200, r.text
    resp = wire.decode_response(r.content, r.headers["content-type"])
    assert_params(resp.params, reference, dtype)
    assert resp.download_bytes == np.dtype(dtype).itemsize * 2 * (32 * 32 + 32)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_http_binary_matches_in_process(app, reference, dtype):
    _, client = app
    req = GenerateRequest("d2", CLICK_KEY, items=np.array(ITEMS, np.int32), dtype=dtype)
    r = client.post(
        "/v1/generate", content=wire.encode_request(req), headers={"content-type": wire.FRAME_TYPE}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == wire.FRAME_TYPE
    resp = wire.decode_response(r.content, wire.FRAME_TYPE)
    assert_params(resp.params, reference, dtype)
    assert resp.upload_bytes == 4 * len(ITEMS) and len(r.content) < resp.download_bytes + 512


def test_handle_single_batch_and_client(app, reference):
    from actors.service.generator_client import ServeGeneratorClient

    handle, _ = app
    single = handle.generate.remote(GenerateRequest("h1", CLICK_KEY, items=ITEMS)).result()
    assert_params(single.params, reference)
    reqs = [GenerateRequest(f"h{i}", CLICK_KEY, items=ITEMS, dtype="float16") for i in range(5)]
    reqs.append(GenerateRequest("img", IMAGE_KEY, pixels=np.zeros((1, 48, 48), np.float32)))
    many = ServeGeneratorClient(handle).generate(reqs)
    assert [r.device_id for r in many] == [r.device_id for r in reqs]
    assert_params(many[0].params, reference, "float16")
    assert many[-1].model_key == IMAGE_KEY and many[0].batch_size == 5
    from actors.service.messages import GenerateBatchRequest

    stacked = handle.generate_batch.remote(
        GenerateBatchRequest(["c0", "c1"], CLICK_KEY, items=np.array([ITEMS, ITEMS]))
    ).result()
    assert_params(stacked.split()[1].params, reference)


def test_handle_typed_errors_and_return_exceptions(app):
    handle, _ = app
    with pytest.raises(GeneratorError) as info:
        handle.generate.remote(GenerateRequest("x", CLICK_KEY, items=[NUM_ITEMS + 1])).result()
    assert info.value.field == "items" and info.value.status == 422
    good = GenerateRequest("ok", CLICK_KEY, items=ITEMS)
    bad = {"device_id": "bad", "model_key": "missing", "items": ITEMS}
    with pytest.raises(GeneratorError) as info:
        handle.generate_many.remote([good, bad]).result()
    assert info.value.field == "requests[1].model_key"
    out = handle.generate_many.remote([good, bad], return_exceptions=True).result()
    assert out[0].device_id == "ok" and isinstance(out[1], GeneratorError)


def test_http_batch_and_limits(app):
    _, client = app
    body = {
        "requests": [
            {"device_id": f"b{i}", "model_key": CLICK_KEY, "items": ITEMS} for i in range(3)
        ]
    }
    r = client.post("/v1/generate", json=body)
    assert r.status_code == 200 and len(r.json()["responses"]) == 3
    body["requests"][2]["items"] = [0]
    r = client.post("/v1/generate", json=body)
    assert r.status_code == 422 and r.json()["field"] == "requests[2].items"
    r = client.post("/v1/generate", content=b"0" * (64 * 1024 + 1))
    assert r.status_code == 413 and r.json()["field"] == "body"
    r = client.post("/v1/generate", content=b"{}", headers={"content-type": "application/x-pickle"})
    assert r.status_code == 415


# ---- fuzzing: every bad request gets a 4xx / typed error, then a good one still works ----------
valid_ids = st.integers(1, NUM_ITEMS)
bad_scalar = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=NUM_ITEMS + 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.just([1, 2]),
)
bad_items = st.one_of(
    st.tuples(st.lists(valid_ids, max_size=4), bad_scalar, st.lists(valid_ids, max_size=4)).map(
        lambda t: [*t[0], t[1], *t[2]]
    ),
    st.lists(valid_ids, min_size=REALTIME_SIZE + 1, max_size=40),  # oversized
    st.lists(st.just(0), max_size=5),  # empty / padding only
    st.one_of(
        st.integers(),
        st.text(max_size=5),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)
bad_embeddings = st.one_of(
    st.integers(1, 4).flatmap(
        lambda r: st.lists(
            st.lists(st.floats(-1, 1), min_size=31, max_size=31), min_size=r, max_size=r
        )
    ),
    st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), min_size=32, max_size=32).map(
        lambda row: [row]
    ),
    st.just([]),
    st.lists(
        st.lists(st.floats(-1, 1), min_size=32, max_size=32),
        min_size=REALTIME_SIZE + 1,
        max_size=REALTIME_SIZE + 2,
    ),
)
base = {"device_id": "fuzz", "model_key": CLICK_KEY}
bad_bodies = st.one_of(
    bad_items.map(lambda v: base | {"items": v}),
    bad_embeddings.map(lambda v: base | {"embeddings": v}),
    st.text(min_size=1, max_size=20)
    .filter(lambda k: k not in (CLICK_KEY, IMAGE_KEY, HYPER_KEY))
    .map(lambda k: base | {"model_key": k, "items": ITEMS}),
    st.text(max_size=10)
    .filter(lambda d: d not in ("float32", "float16"))
    .map(lambda d: base | {"items": ITEMS, "dtype": d}),
    st.sampled_from(["device_id", "model_key"]).map(
        lambda k: {x: v for x, v in (base | {"items": ITEMS}).items() if x != k}
    ),
    st.text(min_size=1, max_size=8)
    .filter(lambda k: k not in GenerateRequest.__dataclass_fields__)
    .map(lambda k: base | {"items": ITEMS, k: 1}),
    st.just(base | {"items": ITEMS, "embeddings": [[0.0] * 32]}),
)
FUZZ = settings(
    max_examples=70, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


@FUZZ
@given(body=bad_bodies)
def test_fuzz_http_json(app, body):
    _, client = app
    r = client.post("/v1/generate", content=json.dumps(body).encode())  # NaN/inf as JSON extensions
    assert 400 <= r.status_code < 500, (body, r.text)
    assert {"error", "field", "message"} <= set(r.json())


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(raw=st.binary(max_size=200), framed=st.booleans())
def test_fuzz_http_raw_bytes(app, raw, framed):
    _, client = app
    body = wire.MAGIC + raw if framed else raw
    r = client.post(
        "/v1/generate",
        content=body,
        headers={"content-type": wire.FRAME_TYPE if framed else wire.JSON_TYPE},
    )
    assert 400 <= r.status_code < 500, (raw, r.text)


@FUZZ
@given(body=bad_bodies)
def test_fuzz_handle(app, body):
    handle, _ = app
    with pytest.raises(GeneratorError) as info:
        handle.generate.remote(body).result()
    assert 400 <= info.value.status < 500 and info.value.field


def test_good_request_after_fuzzing(app, reference):
    handle, client = app
    r = client.post(
        "/v1/generate", json={"device_id": "after", "model_key": CLICK_KEY, "items": ITEMS}
    )
    assert r.status_code == 200
    assert_params(wire.decode_response(r.content, r.headers["content-type"]).params, reference)
    assert_params(
        handle.generate.remote(GenerateRequest("after", CLICK_KEY, items=ITEMS)).result().params,
        reference,
    )
