"""Device model: functional forward, gradients, backbones, checkpoints, cost."""

import ast
from pathlib import Path

import pytest
import torch

from duet.builders import mobilenet_umn, sequence_umn
from duet.checkpoint import load_checkpoint, save_checkpoint
from duet.cost import on_device_flops, on_device_params
from duet.dynamic import ClassifierConfig, GlobalClassifier, functional_forward
from duet.losses import weighted_loss
from duet.method import METHODS
from duet.mobilenet import MobileNetConfig, MobileNetV3
from duet.model import DeviceModel, ModelConfig
from duet.train import TrainConfig

NUM_ITEMS = 50


def test_batched_functional_forward_equals_per_device_loop():
    torch.manual_seed(0)
    cfg = ClassifierConfig((8, 16, 4), "relu")
    D, N = 5, 7
    params = [(torch.randn(D, o, i), torch.randn(D, o)) for o, i in cfg.shapes]
    x = torch.randn(D, N, 8)
    batched = functional_forward(cfg, x, params)
    for d in range(D):
        (w1, b1), (w2, b2) = [(w[d], b[d]) for w, b in params]
        expected = torch.relu(x[d] @ w1.T + b1) @ w2.T + b2
        torch.testing.assert_close(batched[d], expected)


def test_global_params_broadcast_without_copy():
    g = GlobalClassifier(ClassifierConfig((8, 4)))
    ((w, _),) = g.params(3)
    assert w.shape == (3, 4, 8) and w.data_ptr() == g.weights[0].data_ptr()


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
@pytest.mark.parametrize("method", ["base", "duet", "hypernet"])
def test_gradients_reach_backbone_and_generator(backbone, method, clicks):
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn(backbone, method, NUM_ITEMS)).train()
    weighted_loss(model, clicks, TrainConfig(gamma=0.9)).backward()
    assert model.backbone.item_emb.weight.grad.abs().sum() > 0
    if model.ppg is not None:
        grads = [p.grad for p in model.ppg.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), (
            "every PPG tensor gets a gradient"
        )


def test_empty_history_gives_finite_logits(clicks):
    model = DeviceModel(sequence_umn("sasrec", "duet", NUM_ITEMS)).eval()
    clicks.history[:] = 0
    clicks.realtime[:] = 0
    global_logits, gen_logits = model(clicks)
    assert torch.isfinite(global_logits).all() and torch.isfinite(gen_logits).all()


@pytest.mark.parametrize("variant,feature_dim", [("large", 960), ("small", 576)])
def test_mobilenet_at_48_gray_and_224_rgb(variant, feature_dim):
    gray = MobileNetV3(MobileNetConfig(variant, in_channels=1)).eval()
    rgb = MobileNetV3(MobileNetConfig(variant, in_channels=3)).eval()
    with torch.no_grad():
        assert gray(torch.rand(2, 1, 48, 48)).shape == (2, feature_dim)
        assert rgb(torch.rand(1, 3, 224, 224)).shape == (1, feature_dim)


def test_mobilenet_parameter_counts_match_reference_architecture():
    # torchvision's mobilenet_v3_large trunk (features) has 2,971,952 parameters at 3 channels
    trunk = MobileNetV3(MobileNetConfig("large", in_channels=3))
    assert sum(p.numel() for p in trunk.parameters()) == 2_971_952
    small = MobileNetV3(MobileNetConfig("small", in_channels=3))
    assert sum(p.numel() for p in small.parameters()) == 927_008


def test_mobilenet_running_statistics_follow_short_training():
    """After the ~45 optimizer steps CK+48 gets, eval-mode BatchNorm statistics must match
    the data: with torchvision's momentum 0.01 they stayed ~64% at their init and eval-mode
    predictions collapsed to one class."""
    torch.manual_seed(0)
    net = MobileNetV3(MobileNetConfig("small", in_channels=1)).train()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    batch_means: dict[torch.nn.Module, torch.Tensor] = {}
    for m in norms:
        m.register_forward_hook(
            lambda mod, inp, out: batch_means.__setitem__(mod, inp[0].mean((0, 2, 3)))
        )
    x = torch.rand(4, 1, 48, 48) * 0.3 + 0.5  # pixels are not centred at 0
    with torch.no_grad():
        for _ in range(45):  # train mode normalizes by batch statistics: same input each pass
            net(x)
    errors = torch.stack(
        [(m.running_mean - batch_means[m]).norm() / batch_means[m].norm() for m in norms]
    )
    # measured: median 0.009 at momentum 0.1, 0.636 at torchvision's 0.01
    assert errors.median() < 0.05, f"running means off the data by {errors.tolist()}"


def test_image_model_trains_one_step(images):
    model = DeviceModel(mobilenet_umn("small", "duet", 3, in_channels=1, head_hidden=32)).train()
    loss = weighted_loss(model, images, TrainConfig())
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.ppg.parameters())


@pytest.mark.parametrize("method", ["base", "duet", "duet-no-swa", "hypernet"])
def test_checkpoint_round_trip_is_bit_exact(method, clicks, tmp_path):
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("sasrec", method, NUM_ITEMS)).eval()
    save_checkpoint(model, tmp_path, info={"seed": 0})
    loaded, info = load_checkpoint(tmp_path)
    assert info == {"seed": 0}
    assert loaded.cfg == model.cfg
    with torch.no_grad():
        for a, b in zip(model(clicks), loaded(clicks), strict=True):
            assert (a is None and b is None) or torch.equal(a, b)


def test_checkpoint_refuses_pickled_objects(tmp_path):
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS))
    save_checkpoint(model, tmp_path)
    torch.save({"evil": object()}, tmp_path / "model.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_checkpoint(tmp_path)


def test_model_config_validates():
    cfg = sequence_umn("din", "base", NUM_ITEMS)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        METHODS["magic"]
    bare = ModelConfig(
        backbone="din", method="duet", classifier=cfg.classifier, sequence=cfg.sequence
    )
    with pytest.raises(ValueError, match="needs a ppg"):
        METHODS["duet"].check_model(bare)
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        ModelConfig(backbone="resnet", method="base", classifier=cfg.classifier)
    with pytest.raises(ValueError, match="divisible"):
        sequence_umn("sasrec", "base", NUM_ITEMS, num_heads=5)


def test_on_device_cost_excludes_the_generator(clicks):
    base = DeviceModel(sequence_umn("sasrec", "base", NUM_ITEMS))
    duet = DeviceModel(sequence_umn("sasrec", "duet", NUM_ITEMS))
    assert on_device_params(base) == on_device_params(duet)
    assert on_device_flops(base, clicks) == on_device_flops(duet, clicks) > 0


def test_duet_package_imports_only_torch_side_libraries():
    forbidden = {"ray", "polars", "pyarrow", "pandas", "prometheus_client"}
    for path in Path(__file__).resolve().parents[2].joinpath("duet").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_the_authors_sasrec_has_their_parameter_count():
    """With every choice of HelloZicky/DUET's SASRec (benchmarks/paper/parity.py THEIRS_SASREC),
    the model has their registered parameters, 125,696 on ML-100K's 1,682 items (measured
    on their code), less the 1,653 rows of their position table that no 30-click history
    reaches (their table has id_vocab rows, ours history_length): 125,696 - 1,653 x 32."""
    arch = dict(
        num_blocks=1,
        ffn_mult=4,
        dropout=0.0,
        norm_first=False,
        causal=False,
        input_transform=True,
        target_tower=True,
        pos_std=0.05,
        activation="tanh",
    )
    model = DeviceModel(sequence_umn("sasrec", "base", 1682, arch=arch))
    assert sum(p.numel() for p in model.parameters()) == 125_696 - (1683 - 30) * 32
    assert not any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules())


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
def test_arch_choices_run_and_unknown_keys_are_refused(backbone, clicks):
    model = DeviceModel(
        sequence_umn(backbone, "duet", NUM_ITEMS, arch={"target_tower": True, "activation": "tanh"})
    )
    global_logits, gen_logits = model(clicks)
    assert global_logits.shape == gen_logits.shape == (len(clicks),)
    with pytest.raises(ValueError, match="unknown key"):
        sequence_umn(backbone, "base", NUM_ITEMS, arch={"depth": 3})


@pytest.mark.parametrize("variant", ["large", "small"])
def test_channels_last_trunk_computes_what_a_contiguous_one_does(variant):
    """The trunk runs channels-last by default, for speed: its features and gradients equal
    those of the same weights in the default layout, to float rounding."""
    torch.manual_seed(0)
    fast = MobileNetV3(MobileNetConfig(variant, in_channels=3)).train()
    assert fast.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = MobileNetV3(MobileNetConfig(variant, in_channels=3, channels_last=False)).train()
    plain.load_state_dict(fast.state_dict())
    assert plain.features[0][0].weight.is_contiguous()
    x = torch.rand(4, 3, 64, 64)
    torch.manual_seed(1)
    a = fast(x)
    torch.manual_seed(1)
    b = plain(x)
    # as a whole, like the gradients below: on one thread oneDNN sums MobileNetV3-Large's
    # convolutions in another order and single outputs near zero move by 2e-5 (1.6e-5 of
    # the output's norm; a layout bug moves it by order 1)
    assert (a - b).norm() <= 1e-4 * b.norm()
    a.square().sum().backward()
    b.square().sum().backward()
    # reductions over B x H x W positions are summed in another order, and some gradients
    # (a bias before a BatchNorm) are pure cancellation: compare the gradient as a whole
    pairs = list(zip(fast.parameters(), plain.parameters(), strict=True))
    diff = torch.cat([(p.grad - q.grad).flatten() for p, q in pairs])
    total = torch.cat([q.grad.flatten() for _, q in pairs])
    assert diff.norm() <= 1e-4 * total.norm()
