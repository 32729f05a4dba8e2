"""Full-ranking metrics: the all-item scores equal the model's own logits, the seen items
are excluded, and each method ranks with the parameters it scores with."""

from __future__ import annotations

import pytest
import torch

from duet.adaptation import Adaptation, FinetuneConfig
from duet.builders import sequence_umn
from duet.evaluate import full_ranking
from duet.method import METHODS
from duet.model import DeviceModel
from duet.ranking import all_item_scores, ranks, seen_mask

NUM_ITEMS = 50


def test_seen_mask_marks_each_users_items_and_padding():
    ptr, items = torch.tensor([0, 2, 2, 5]), torch.tensor([3, 7, 1, 2, 9])
    mask = seen_mask(ptr, items, torch.tensor([2, 0, 1]), num_items=10)
    assert mask[0].nonzero().squeeze(1).tolist() == [0, 1, 2, 9]
    assert mask[1].nonzero().squeeze(1).tolist() == [0, 3, 7]
    assert mask[2].nonzero().squeeze(1).tolist() == [0]


def test_ranks_count_unseen_items_above_the_target_and_half_the_ties():
    scores = torch.tensor([[0.0, 5.0, 3.0, 4.0, 3.0, 9.0]])
    seen = torch.tensor([[True, False, True, False, False, True]])  # item 5 (9.0) is seen
    # target 2 (3.0, seen itself): above it 1 (5.0) and 3 (4.0); item 4 ties
    assert ranks(scores, torch.tensor([2]), seen).tolist() == [2.5]


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "din"])
@pytest.mark.parametrize("method", ["base", "duet", "finetune"])
def test_all_item_scores_are_the_models_own_logits(make_clicks, backbone, method):
    """Scoring every item as the target gives, at each row's target, the logit the method
    gives that row: the full ranking ranks the model that is evaluated, nothing else."""
    torch.manual_seed(0)
    arch = "base" if method == "finetune" else method
    model = DeviceModel(sequence_umn(backbone, arch, NUM_ITEMS)).eval()
    s = make_clicks(rows=30, sessions=6)
    s.group = torch.arange(len(s))  # one row per impression: rows are independent here
    scorer = METHODS[method](Adaptation(FinetuneConfig(steps=2)))
    scores = all_item_scores(model, s, scorer.row_params(model, s))
    assert scores.shape == (len(s), NUM_ITEMS + 1)
    expected = scorer.eval_logits(model, s)
    torch.testing.assert_close(
        scores.gather(1, s.target[:, None])[:, 0], expected, rtol=1e-4, atol=1e-5
    )


def test_full_ranking_matches_brute_force_over_every_item(make_clicks):
    """full_hr@k / full_ndcg@k equal ranks counted by scoring every item through the
    ordinary forward, one (row, item) at a time, with each user's seen items left out."""
    import dataclasses
    import math

    torch.manual_seed(0)
    model = DeviceModel(sequence_umn("din", "duet", NUM_ITEMS)).eval()
    s = make_clicks(rows=12, sessions=4)
    s.label[:] = 0.0
    s.label[::3] = 1.0
    seen = {u: sorted({int(t) for t in s.target[s.user == u]} | {u + 1, u + 2}) for u in range(6)}
    ptr = torch.tensor([0, *torch.tensor([len(seen[u]) for u in range(6)]).cumsum(0).tolist()])
    items = torch.tensor([i for u in range(6) for i in seen[u]])
    metrics = full_ranking(model, s, METHODS["duet"](), (ptr, items))
    expected_ranks = []
    for row in (s.label > 0.5).nonzero().squeeze(1).tolist():
        one = s.index(torch.full((NUM_ITEMS,), row))
        every = dataclasses.replace(
            one, target=torch.arange(1, NUM_ITEMS + 1), group=torch.arange(NUM_ITEMS)
        )
        logits = METHODS["duet"]().eval_logits(model, every)
        target = int(s.target[row])
        others = [i for i in range(1, NUM_ITEMS + 1) if i not in seen[int(s.user[row])]]
        above = sum(float(logits[i - 1]) > float(logits[target - 1]) for i in others)
        expected_ranks.append(above)
    for k in (10, 20):
        hr = sum(r < k for r in expected_ranks) / len(expected_ranks)
        ndcg = sum(1 / math.log2(r + 2) for r in expected_ranks if r < k) / len(expected_ranks)
        assert metrics[f"full_hr@{k}"] == pytest.approx(hr)
        assert metrics[f"full_ndcg@{k}"] == pytest.approx(ndcg)


def test_full_ranking_runs_every_method(make_clicks):
    """finetune adapts (with gradients) inside the ranking loop; every method yields metrics."""
    from duet.adaptation import UserFinetuneConfig

    torch.manual_seed(0)
    s = make_clicks(rows=40, sessions=4)
    s.user = s.group % 4
    ptr, items = torch.zeros(5, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    adapt = Adaptation(FinetuneConfig(steps=2), UserFinetuneConfig(), history=s)
    for method, arch in (
        ("base", "base"),
        ("finetune", "base"),
        ("finetune-user", "base"),
        ("duet", "duet"),
        ("hypernet", "hypernet"),
    ):
        model = DeviceModel(sequence_umn("sasrec", arch, NUM_ITEMS)).eval()
        metrics = full_ranking(model, s, METHODS[method](adapt), (ptr, items))
        assert 0 <= metrics["full_ndcg@20"] <= metrics["full_hr@20"] <= 1, method
