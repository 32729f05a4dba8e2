"""Evaluation metrics, vectorized over groups (no per-user Python loop, no sklearn).

Grouped AUC (session AUC, user AUC) is the unweighted mean over groups that contain at
least one positive and one negative; ties count one half, as in the Mann-Whitney U.
Ranking metrics assume each group holds one positive and its sampled negatives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

RANK_KS = (5, 10, 20)


def _tied_ranks(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based ranks of ``scores`` within their group, ties averaged."""
    order = np.lexsort((scores, groups))
    g, s = groups[order], scores[order]
    n = len(s)
    # start of each run of equal (group, score) and of each group, in sorted order
    new_run = np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])]
    new_group = np.r_[True, g[1:] != g[:-1]]
    run_id = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.r_[run_start[1:], n]  # exclusive
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    avg_pos = (run_start + run_end - 1) / 2.0  # mean 0-based position of each run
    ranks_sorted = avg_pos[run_id] - group_start + 1
    ranks = np.empty(n)
    ranks[order] = ranks_sorted
    return ranks


def grouped_auc(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-group AUC; returns (AUC per valid group, ids of those groups)."""
    _, gidx = np.unique(groups, return_inverse=True)
    ranks = _tied_ranks(scores, gidx)
    pos = labels > 0.5
    n_pos = np.bincount(gidx, weights=pos)
    n_neg = np.bincount(gidx, weights=~pos)
    rank_sum = np.bincount(gidx, weights=ranks * pos)
    valid = (n_pos > 0) & (n_neg > 0)
    auc = (rank_sum[valid] - n_pos[valid] * (n_pos[valid] + 1) / 2) / (n_pos[valid] * n_neg[valid])
    return auc, np.flatnonzero(valid)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    values, _ = grouped_auc(scores, labels, np.zeros(len(scores), dtype=np.int64))
    return float(values[0]) if len(values) else float("nan")


def mean_grouped_auc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    values, _ = grouped_auc(scores, labels, groups)
    return float(values.mean()) if len(values) else float("nan")


def ranking_metrics(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, ks=RANK_KS
) -> dict[str, float]:
    """NDCG@k and HR@k for groups of one positive among sampled negatives."""
    _, gidx = np.unique(groups, return_inverse=True)
    pos = labels > 0.5
    pos_score = np.full(gidx.max() + 1, np.nan)
    pos_score[gidx[pos]] = scores[pos]
    # 0-based rank of the positive = negatives scoring strictly higher (+ half the ties)
    above = np.bincount(gidx, weights=(scores > pos_score[gidx]) & ~pos)
    ties = np.bincount(gidx, weights=(scores == pos_score[gidx]) & ~pos)
    rank = (above + 0.5 * ties)[~np.isnan(pos_score)]
    out = {}
    for k in ks:
        hit = rank < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean())
    return out


def click_metrics(
    logits: Tensor, labels: Tensor, sessions: Tensor, users: Tensor, groups: Tensor
) -> dict[str, float]:
    """All click metrics from row logits; ids group rows into sessions, users and impressions."""
    s, y = logits.double().numpy(), labels.numpy()
    prob = torch.sigmoid(logits.double()).clamp(1e-7, 1 - 1e-7).numpy()
    return {
        "auc": auc(s, y),
        "session_auc": mean_grouped_auc(s, y, sessions.numpy()),
        "user_auc": mean_grouped_auc(s, y, users.numpy()),
        "logloss": float(-(y * np.log(prob) + (1 - y) * np.log(1 - prob)).mean()),
        "accuracy": float(((prob > 0.5) == (y > 0.5)).mean()),
        **ranking_metrics(s, y, groups.numpy()),
    }


def image_metrics(
    logits: Tensor, labels: Tensor, sessions: Tensor, users: Tensor
) -> dict[str, float]:
    """Accuracy, cross-entropy and macro one-vs-rest AUC (overall, per session, per user)."""
    C = logits.shape[1]
    y = labels.numpy()
    s = torch.log_softmax(logits.double(), dim=1)
    onehot = np.eye(C)[y]  # (B, C)
    # one-vs-rest: each class is a group, rows repeated per class
    flat_scores, flat_labels = s.numpy().T.ravel(), onehot.T.ravel()
    cls = np.repeat(np.arange(C), len(y))
    by_class, _ = grouped_auc(flat_scores, flat_labels, cls)
    sess, usr = np.tile(sessions.numpy(), C), np.tile(users.numpy(), C)
    return {
        "accuracy": float((logits.argmax(1).numpy() == y).mean()),
        "logloss": float(-s.numpy()[np.arange(len(y)), y].mean()),
        "auc": float(by_class.mean()) if len(by_class) else float("nan"),
        "session_auc": mean_grouped_auc(flat_scores, flat_labels, sess * C + cls),
        "user_auc": mean_grouped_auc(flat_scores, flat_labels, usr * C + cls),
    }


def count_flops(fn, *args) -> int:
    """FLOPs of one call, counted by torch's dispatcher-level counter (matmul = 2 flops/MAC)."""
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())
