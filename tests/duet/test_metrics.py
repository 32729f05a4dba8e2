"""Vectorized metrics against brute-force definitions on random data with ties."""

import math

import numpy as np
import pytest
import torch

from duet.metrics import auc, click_metrics, grouped_auc, image_metrics, ranking_metrics


def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    n = 600
    scores = rng.integers(0, 20, n).astype(float)  # many ties on purpose
    labels = (rng.random(n) < 0.3).astype(float)
    groups = rng.integers(0, 40, n)
    return scores, labels, groups


def test_auc_matches_pairwise_definition(scored):
    s, y, _ = scored
    assert auc(s, y) == pytest.approx(brute_auc(s, y), abs=1e-12)


def test_grouped_auc_matches_per_group_loop(scored):
    s, y, g = scored
    values, ids = grouped_auc(s, y, g)
    uniq = np.unique(g)
    expected = {
        int(u): brute_auc(s[g == u], y[g == u])
        for u in uniq
        if 0 < y[g == u].sum() < (g == u).sum()
    }
    assert dict(zip(uniq[ids].tolist(), values.tolist(), strict=True)) == pytest.approx(expected)


def test_ranking_metrics_match_loop():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(50), 101)
    labels = np.zeros_like(groups, dtype=float)
    labels[::101] = 1
    scores = rng.normal(size=len(groups)) + 2 * labels
    got = ranking_metrics(scores, labels, groups)
    ranks = np.array([(scores[groups == k][1:] > scores[groups == k][0]).sum() for k in range(50)])
    for k in (5, 10, 20):
        assert got[f"hr@{k}"] == pytest.approx((ranks < k).mean())
        assert got[f"ndcg@{k}"] == pytest.approx(
            np.mean([1 / math.log2(r + 2) if r < k else 0 for r in ranks])
        )


def test_perfect_and_reversed_scores():
    y = torch.tensor([1.0, 0, 0, 1, 0, 0])
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    good = click_metrics(y * 10 - 5, y, ids, ids, ids)
    bad = click_metrics(-(y * 10 - 5), y, ids, ids, ids)
    assert good["auc"] == good["session_auc"] == good["hr@5"] == good["ndcg@5"] == 1.0
    assert bad["auc"] == 0.0 and good["accuracy"] == 1.0 and good["logloss"] < bad["logloss"]


def test_image_metrics_accuracy_and_auc():
    logits = torch.eye(3).repeat(4, 1) * 5
    labels = torch.arange(3).repeat(4)
    m = image_metrics(logits, labels, torch.arange(12) // 3, torch.arange(12) // 6)
    assert m["accuracy"] == 1.0 and m["auc"] == 1.0
    m = image_metrics(logits, (labels + 1) % 3, torch.arange(12) // 3, torch.arange(12) // 6)
    assert m["accuracy"] == 0.0 and m["auc"] < 0.5
