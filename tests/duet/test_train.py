"""Training loop, γ^t weighting, the finetune baseline and evaluation."""

import pytest
import torch

from duet.adaptation import Adaptation, FinetuneConfig
from duet.builders import mobilenet_umn, sequence_umn
from duet.evaluate import evaluate
from duet.evaluate import predict as train_predict
from duet.finetune import click_finetune_rows, finetune_params
from duet.losses import row_loss, weighted_loss
from duet.method import METHODS
from duet.model import DeviceModel
from duet.train import (
    SHIFT_FRACTION,
    TrainConfig,
    augment_images,
    recalibrate_batchnorm,
    train,
)

NUM_ITEMS = 50


def test_loss_is_gamma_weighted_mean_of_row_losses(clicks):
    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS)).eval()
    clicks.position[:] = torch.arange(len(clicks)) % 10
    per_row = row_loss(model(clicks)[0], clicks)
    w = 0.5 ** clicks.position.float()
    expected = (w * per_row).sum() / w.sum()
    torch.testing.assert_close(weighted_loss(model, clicks, TrainConfig(gamma=0.5)), expected)
    assert not torch.isclose(expected, per_row.mean())  # γ actually changes the objective


def test_training_reduces_loss(make_clicks):
    torch.manual_seed(0)
    s = make_clicks(rows=600, sessions=30)
    s.label = (s.target % 2 == 0).float()  # learnable from the target alone
    model = DeviceModel(sequence_umn("din", "duet", NUM_ITEMS))
    log = train(model, s, TrainConfig(epochs=8, batch_size=64), progress=False)
    assert log.losses[-1] < 0.7 * log.losses[0] and log.selected_epoch == 8
    assert evaluate(model, s, METHODS["duet"]())["auc"] > 0.9


def test_finetune_rows_from_realtime_clicks():
    realtime = torch.tensor([[0, 0, 3, 4, 5]])
    history, target, label, valid = click_finetune_rows(
        realtime, torch.tensor([7]), 4, NUM_ITEMS, FinetuneConfig(negatives=1)
    )
    assert target.shape == (1, 8) and label.tolist() == [[1, 0] * 4]
    # click 4 (j=3) has history [0, 0, 0, 3] ... padding first, most recent last
    assert history[0, 4].tolist() == [0, 0, 0, 3] and target[0, 4] == 4
    assert valid[0].tolist() == [False, False] + [True] * 6  # padding targets are not rows


@pytest.mark.parametrize("kind", ["clicks", "images"])
def test_batched_finetune_equals_one_session_at_a_time(kind, clicks, images):
    torch.manual_seed(0)
    if kind == "clicks":
        model, s = DeviceModel(sequence_umn("sasrec", "base", NUM_ITEMS)), clicks
    else:
        model, s = (
            DeviceModel(mobilenet_umn("small", "base", 3, in_channels=1, head_hidden=16)),
            images,
        )
    cfg = FinetuneConfig(steps=3)
    sessions = torch.tensor([0, 2, 3])
    together = finetune_params(model, s, sessions, cfg)
    for k, sess in enumerate(sessions):
        alone = finetune_params(model, s, sess[None], cfg)
        for (w, b), (w1, b1) in zip(together, alone, strict=True):
            torch.testing.assert_close(w[k], w1[0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(b[k], b1[0], rtol=1e-4, atol=1e-5)
    # and it moved away from the global classifier
    assert not torch.allclose(together[0][0][0], model.classifier.weights[0])


def test_finetune_evaluation_reports_latency(clicks):
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS))
    m = evaluate(model, clicks, METHODS["finetune"](Adaptation(FinetuneConfig(steps=2))))
    assert 0 <= m["auc"] <= 1 and m["latency_ms"] > 0
    assert evaluate(model, clicks, METHODS["base"]())["latency_ms"] == 0.0


def assert_flips_and_bounded_shifts(before: torch.Tensor, after: torch.Tensor) -> None:
    """Each frame became itself, flipped or not, moved by at most SHIFT_FRACTION of its
    side with replicated edges; and the draws did move most frames."""
    assert after.shape == before.shape
    h, w = before.shape[-2:]
    max_shift = max(1, round(min(h, w) * SHIFT_FRACTION))
    changed = 0
    for x, y in zip(before, after, strict=True):
        found = False
        for flipped in (x, x.flip(-1)):
            for dy in range(-max_shift, max_shift + 1):
                for dx in range(-max_shift, max_shift + 1):
                    r = (torch.arange(h) + dy).clamp(0, h - 1)
                    c = (torch.arange(w) + dx).clamp(0, w - 1)
                    found = found or torch.equal(flipped[:, r][:, :, c], y)
        assert found, "an augmented frame is not a flip/shift of its source"
        changed += not torch.equal(x, y)
    assert changed > len(before) // 2


def test_augmented_frames_are_flips_and_bounded_shifts_of_their_own_frame(images):
    """Labels, sessions and (without a real-time stream) the PPG's frames are untouched."""
    out = augment_images(images, torch.Generator().manual_seed(0))
    assert torch.equal(out.label, images.label) and out.realtime is images.realtime
    assert_flips_and_bounded_shifts(images.pixels, out.pixels)


def test_realtime_frames_are_augmented_from_their_own_stream(images):
    """With a real-time stream the PPG's frames are flipped and shifted too, and the
    scored frames get exactly the draws they get without it (base training unchanged)."""
    alone = augment_images(images, torch.Generator().manual_seed(0))
    both = augment_images(
        images, torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    )
    assert torch.equal(both.pixels, alone.pixels)
    assert_flips_and_bounded_shifts(images.realtime, both.realtime)


def test_recalibrated_batchnorm_matches_the_final_weights_statistics(images):
    """After training, eval mode must use statistics of the final weights: the running
    means equal the average of the per-batch means of one train-mode pass."""
    torch.manual_seed(0)
    model = DeviceModel(mobilenet_umn("small", "base", 3, in_channels=1, head_hidden=16))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:  # stale statistics, as after a short training from init
        m.running_mean.fill_(5.0)
    seen: dict[torch.nn.Module, list[torch.Tensor]] = {m: [] for m in norms}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: seen[mod].append(inp[0].mean((0, 2, 3))))
        for m in norms
    ]
    recalibrate_batchnorm(model, images, batch_size=len(images))
    for h in hooks:
        h.remove()
    for m in norms:
        torch.testing.assert_close(m.running_mean, seen[m][0], rtol=1e-4, atol=1e-5)
        assert m.momentum == 0.1  # restored
    assert not model.training


@pytest.fixture
def one_thread():
    """Bit-for-bit comparisons need one thread: with several, CPU reductions split their
    work by thread and memory alignment, and two identical runs differ in the last bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_epoch_kept_is_the_best_on_validation_and_validating_changes_no_weights(
    make_clicks, one_thread
):
    """train(val=...) keeps the epoch with the best validation AUC, and that model is the
    very one a run stopped at that epoch ends with: validating every epoch (BatchNorm
    recalibration and eval passes) draws nothing from the training run's random streams.
    SASRec has dropout, so a stray draw would show."""
    s, val = make_clicks(rows=400, sessions=20), make_clicks(rows=200, sessions=10)
    s.label = (s.target % 2 == 0).float()
    val.label = (val.target % 2 == 1).float()  # the opposite rule: validation AUC falls

    cfg = TrainConfig(epochs=4, batch_size=64)
    torch.manual_seed(1)
    selected = DeviceModel(sequence_umn("sasrec", "duet", NUM_ITEMS))
    log = train(selected, s, cfg, progress=False, val=val)
    curve = [m["auc"] for m in log.val]
    assert len(curve) == 4 and log.selected_epoch == 1 + curve.index(max(curve)) < 4
    assert (
        log.selected_val["auc"] == max(curve) == evaluate(selected, val, METHODS["duet"]())["auc"]
    )
    torch.manual_seed(1)
    stopped = DeviceModel(sequence_umn("sasrec", "duet", NUM_ITEMS))
    stop_cfg = TrainConfig(epochs=log.selected_epoch, batch_size=64)
    train(stopped, s, stop_cfg, progress=False)
    for (name, a), b in zip(
        selected.state_dict().items(), stopped.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_select_last_keeps_the_last_epoch_and_still_records_validation(make_clicks):
    s, val = make_clicks(rows=200, sessions=10), make_clicks(rows=100, sessions=5)
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS))
    log = train(model, s, TrainConfig(epochs=3, select="last"), progress=False, val=val)
    assert log.selected_epoch == 3 and len(log.val) == 3
    assert log.selected_val == log.val[-1]


def test_weight_decay_shrinks_the_weights(make_clicks):
    s = make_clicks(rows=200, sessions=10)
    norms = {}
    for wd in (0.0, 0.5):
        torch.manual_seed(0)
        model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS))
        train(model, s, TrainConfig(epochs=3, weight_decay=wd), progress=False)
        norms[wd] = float(sum(p.detach().norm() ** 2 for p in model.parameters()))
    assert norms[0.5] < 0.97 * norms[0.0]


@pytest.mark.parametrize(
    ("field", "value"), [("weight_decay", -1e-4), ("weight_decay", float("nan")), ("select", "x")]
)
def test_train_config_refuses_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_finetune_user_tunes_every_parameter_per_user_from_the_same_base(make_clicks):
    """finetune-user: each user's rows are scored by the base model fine-tuned on that
    user's history rows alone, starting from the same base every time; the model is
    returned unchanged; 0 epochs score exactly as base."""
    from duet.adaptation import UserFinetuneConfig
    from duet.finetune import finetune_user_logits

    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS)).eval()
    history, test = make_clicks(rows=200, sessions=20, seed=1), make_clicks(rows=100, sessions=20)
    for s in (history, test):  # an impression belongs to one user, as in prepared data
        s.user = s.group % 10
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = UserFinetuneConfig(epochs=1, lr=1e-2, batch_size=32)
    tuned = finetune_user_logits(model, history, test, cfg)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    base = evaluate(model, test, METHODS["base"]())
    assert not torch.allclose(tuned, train_predict(model, test))
    # user 3 alone: the same logits as in the full pass (no leak between users)
    alone = finetune_user_logits(model, history, test, cfg, users=torch.tensor([3]))
    rows = test.user == 3
    torch.testing.assert_close(alone[rows], tuned[rows])
    zero = finetune_user_logits(model, history, test, UserFinetuneConfig(epochs=0))
    torch.testing.assert_close(zero, train_predict(model, test))
    m = evaluate(model, test, METHODS["finetune-user"](Adaptation(user=cfg, history=history)))
    assert m["latency_ms"] > 0 and m["auc"] != base["auc"]


def subnormals_kept() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() != 0.0


def test_training_flushes_subnormals_and_gives_them_back(make_clicks, monkeypatch):
    """Subnormal Adam moments slow a late epoch 1.5x (benchmarks/RESULTS.md); flushing
    them is for the training loop only, not for the rest of the process."""
    import duet.losses as losses_module

    seen = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(subnormals_kept())
        return weighted_loss(*args, **kwargs)

    monkeypatch.setattr(losses_module, "weighted_loss", recording)
    model = DeviceModel(sequence_umn("gru4rec", "base", NUM_ITEMS))
    assert subnormals_kept()
    train(model, make_clicks(rows=200, sessions=10), TrainConfig(epochs=1), progress=False)
    assert seen and not any(seen)
    assert subnormals_kept()
