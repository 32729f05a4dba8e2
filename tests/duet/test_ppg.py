"""PPG and SWA: Eq. 8-9 semantics, per-device conditioning, block-wise generation."""

import dataclasses

import pytest
import torch

from duet.builders import sequence_umn
from duet.dynamic import ClassifierConfig
from duet.model import DeviceModel
from duet.ppg import NECKS, PPG, LayerGenerator, PPGConfig, swa_weights

NUM_ITEMS = 50


def test_swa_weights_are_a_probability_vector():
    torch.manual_seed(0)
    p = swa_weights(torch.randn(5, 16, 8), tau=0.5)
    assert p.shape == (5,)
    assert torch.all(p >= 0)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6)
    # generators with larger row sums of S = W'W'^T get more weight (Eq. 9 is monotone)
    w = torch.randn(3, 4, 4)
    w[2] *= 3
    p = swa_weights(w, tau=1.0)
    s = (w.flatten(1) @ w.flatten(1).T).sum(1)
    assert torch.equal(p.argsort(), s.argsort())


def test_single_generator_reduces_to_that_generator():
    torch.manual_seed(0)
    cfg = PPGConfig(input_dim=8, num_generators=1)
    layer = LayerGenerator(cfg, out_dim=4, in_dim=6)
    assert torch.equal(layer.mixing(), torch.ones(1))
    z = torch.randn(3, cfg.hidden_dim)
    w, b = layer(z, 3)
    # the same computation with the one generator's own tensors, no mixing
    e = torch.nn.functional.layer_norm(layer.head(z).view(3, 1, -1), (cfg.layer_embed_dim,))
    h = torch.relu(e @ layer.w1[0].T + layer.b1[0])
    out = (h @ layer.w2[0].T + layer.b2[0]).view(3, -1, 7)
    torch.testing.assert_close(w, out[..., :6])
    torch.testing.assert_close(b, out[..., 6])


def test_swa_mixes_generators_with_p():
    torch.manual_seed(0)
    layer = LayerGenerator(PPGConfig(input_dim=8, num_generators=3), out_dim=4, in_dim=6)
    z = torch.randn(2, 64)
    p = layer.mixing()
    w, _ = layer(z, 2)
    e = torch.nn.functional.layer_norm(layer.head(z).view(2, 1, -1), (64,))
    w1 = sum(p[i] * layer.w1[i] for i in range(3))
    b1 = sum(p[i] * layer.b1[i] for i in range(3))
    w2 = sum(p[i] * layer.w2[i] for i in range(3))
    b2 = sum(p[i] * layer.b2[i] for i in range(3))
    expected = (torch.relu(e @ w1.T + b1) @ w2.T + b2).view(2, -1, 7)[..., :6]
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize("neck", NECKS)
def test_generated_params_depend_on_realtime_samples_only(neck):
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("sasrec", "duet", NUM_ITEMS, neck=neck)).eval()
    a = torch.randint(1, NUM_ITEMS + 1, (1, 10))
    b = torch.randint(1, NUM_ITEMS + 1, (1, 10))
    realtime = torch.cat([a, b, a])  # devices 0 and 2 identical, 1 different
    inputs, mask = model.device_inputs(realtime)
    params = model.generate(inputs, mask, 3)
    for w, bias in params:
        assert torch.equal(w[0], w[2]) and torch.equal(bias[0], bias[2])
        assert not torch.allclose(w[0], w[1])


def test_hypernet_is_not_conditioned_on_data():
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("gru4rec", "hypernet", NUM_ITEMS)).eval()
    assert model.ppg is not None and model.ppg.neck is None
    params = model.generate(None, None, 4)
    for w, _ in params:
        assert all(torch.equal(w[0], w[d]) for d in range(4))


def test_blockwise_generation_for_large_layers():
    classifier = ClassifierConfig((96, 200, 7), "hardswish")
    cfg = PPGConfig(input_dim=96, neck="mean", max_block_params=4096, num_generators=2)
    ppg = PPG(cfg, classifier)
    big, small = ppg.layers
    assert big.blocks == 5 and big.rows == 40  # 200*96 weights / 4096 -> 5 row blocks
    assert small.blocks == 1
    # each block's generator output is ~1/K of the layer: the point of Eq. 4
    assert big.w2.shape[1] == big.rows * (96 + 1)
    params = ppg(torch.randn(3, 1, 96), torch.ones(3, 1), 3)
    assert [tuple(w.shape) for w, _ in params] == [(3, 200, 96), (3, 7, 200)]
    assert [tuple(b.shape) for _, b in params] == [(3, 200), (3, 7)]


@pytest.mark.parametrize("bad", [{"num_generators": 0}, {"tau": 0.0}, {"neck": "lstm"}])
def test_ppg_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad)) if "neck" not in bad else "neck"):
        PPGConfig(input_dim=8, **bad)


def test_generated_weights_vary_between_devices_at_init():
    """Regression: a static output bias once drowned the per-device part (~1/60 of it) and
    the trained generator ignored its input. The device-dependent spread must be of the
    same order as the weights themselves from step 0."""
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("din", "duet", NUM_ITEMS)).eval()
    inputs, mask = model.device_inputs(torch.randint(1, NUM_ITEMS + 1, (64, 10)))
    with torch.no_grad():
        for w, _ in model.generate(inputs, mask, 64):
            spread = w.std(dim=0).mean()  # across devices
            assert spread > 0.3 * w.abs().mean(), f"per-device spread {spread:.2e} too small"


def test_history_conditioning_generates_per_impression_from_its_own_history(make_clicks):
    """condition="history": rows of one impression share one parameter set, generated from
    their history; the session's real-time samples are not read at all."""
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("gru4rec", "duet", NUM_ITEMS, condition="history")).eval()
    s = make_clicks(rows=40, sessions=4)
    s.history = s.history[s.group]  # rows of one impression share a history, as in the data
    params = model.generated_params(s)
    w = params[0][0]  # (B, O, I)
    same_group = s.group[:, None] == s.group[None, :]
    equal = (w[:, None] == w[None, :]).flatten(2).all(-1)
    assert torch.equal(equal, same_group)  # distinct histories: distinct parameters
    moved = dataclasses.replace(s, realtime=torch.randint(1, NUM_ITEMS + 1, s.realtime.shape))
    assert torch.equal(model.generated_params(moved)[0][0], w)
    # the same history in another impression, elsewhere: the same parameters
    twin = dataclasses.replace(s, history=s.history.clone())
    twin.history[s.group == 1] = s.history[s.group == 0][0]
    torch.testing.assert_close(model.generated_params(twin)[0][0][s.group == 1][0], w[0])


def test_history_conditioning_is_refused_for_images():
    from duet.builders import mobilenet_umn

    cfg = mobilenet_umn("small", "duet", 3, in_channels=1)
    with pytest.raises(ValueError, match="condition 'history'"):
        dataclasses.replace(cfg, ppg=dataclasses.replace(cfg.ppg, condition="history"))


@pytest.mark.parametrize("condition", ["session", "history"])
def test_grouped_scoring_equals_every_row_with_its_own_copy(make_clicks, condition):
    """Training scores rows padded per generated set (`DeviceModel.score_grouped`); that is
    the same logits and the same gradients as giving every row its own copy of its set."""
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("din", "duet", NUM_ITEMS, condition=condition)).train()
    s = make_clicks(rows=60, sessions=7)
    s.history = s.history[s.group]
    feat, temb = model.features(s)
    params, inverse = model.group_params(s)
    grouped = model.score_grouped(feat, temb, inverse, params)
    rows = [(w[inverse], b[inverse]) for w, b in params]
    copied = model.score(feat[:, None], temb[:, None], rows)[:, 0]
    torch.testing.assert_close(grouped, copied)
    leaves = [p for p in model.ppg.parameters()]
    g1 = torch.autograd.grad(grouped.square().sum(), leaves, retain_graph=True)
    g2 = torch.autograd.grad(copied.square().sum(), leaves)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
