"""Training loop, γ^t weighting, the finetune baseline and evaluation."""

import pytest
import torch

from duet.builders import mobilenet_umn, sequence_umn
from duet.finetune import FinetuneConfig, click_finetune_rows, finetune_params
from duet.model import DeviceModel
from duet.train import TrainConfig, evaluate, row_loss, train, weighted_loss

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
    losses = train(model, s, TrainConfig(epochs=8, batch_size=64), progress=False)
    assert losses[-1] < 0.7 * losses[0]
    assert evaluate(model, s, "duet")["auc"] > 0.9


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
    m = evaluate(model, clicks, "finetune", FinetuneConfig(steps=2))
    assert 0 <= m["auc"] <= 1 and m["latency_ms"] > 0
    assert evaluate(model, clicks, "base")["latency_ms"] == 0.0
