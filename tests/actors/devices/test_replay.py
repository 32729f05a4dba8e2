"""Replayed sessions: rows rebuilt from an unshifted session equal the prepared test rows;
shifts reach the histories; per-session metrics are those of each session alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import torch

from actors.devices.ondevice import session_scores
from actors.devices.replay import (
    NOT_SCORED,
    build_samples,
    click_rows,
    load_replays,
    replayable_users,
)
from duet.data import ImageSamples
from duet.metrics import auc
from pipelines.shifts import build_shift, click_context, session_rng

from ...conftest import TEST_SESSIONS, USERS


def test_loads_every_users_test_sessions_in_order(prepared):
    users = replayable_users(prepared)
    assert users.tolist() == list(range(USERS))
    replays = load_replays(prepared, [3, 5])
    assert sorted(replays) == [3, 5]
    assert all(len(r) == TEST_SESSIONS for r in replays.values())
    assert [r.session.index for r in replays[3]] == sorted(r.session.index for r in replays[3])


def test_unshifted_rows_equal_the_prepared_rows(prepared):
    test = pl.read_parquet(prepared / "test.parquet").sort("session", "position")
    for replay in load_replays(prepared, range(USERS))[4]:
        history, candidates, valid = click_rows(replay, replay.session)
        rows = test.filter(pl.col("session") == replay.source_session)
        assert np.array_equal(history, np.stack(rows["history"].to_list()))
        assert np.array_equal(candidates[:, 0], rows["target"].to_numpy())
        assert np.array_equal(candidates[:, 1:], np.stack(rows["negatives"].to_list()))
        assert valid.all()


def test_shift_reaches_history_and_masks_clashing_negatives(prepared):
    replay = load_replays(prepared, [2])[2][0]
    ctx, _ = click_context(prepared)
    shifted = build_shift({"type": "click_noise", "rate": 1.0}).apply(
        replay.session, session_rng(0, 2, 0), ctx
    )
    history, candidates, valid = click_rows(replay, shifted)
    L = history.shape[1]
    assert np.array_equal(history[-1, -(len(shifted.items) - 1) :], shifted.items[:-1])
    keep = min(L, len(shifted.realtime))
    assert np.array_equal(history[0, L - keep :], shifted.realtime[-keep:])
    clash = dataclasses.replace(shifted, items=replay.negatives[:, 0].copy())  # click = a negative
    _, _, valid = click_rows(replay, clash)
    assert not valid[:, 1].any() and valid[:, 2:].all()


def test_click_batch_scores_each_session_alone(prepared):
    replays = load_replays(prepared, [0, 1])[0] + load_replays(prepared, [1])[1]
    sessions = [r.session for r in replays]
    # a click moved onto the first negative: that candidate is kept as a row, not scored
    sessions[1] = dataclasses.replace(sessions[1], items=replays[1].negatives[:, 0].copy())
    samples = build_samples(replays, sessions)
    T, C = replays[0].negatives.shape[0], replays[0].negatives.shape[1] + 1
    assert len(samples) == len(replays) * T * C  # every session the same block of rows
    logits = torch.randn(len(samples), generator=torch.Generator().manual_seed(0))
    scores = session_scores(logits, samples, len(replays))
    for u, score in enumerate(scores):
        rows = (samples.session == u) & (samples.label != NOT_SCORED)
        assert score.num_samples == int(rows.sum()) == T * C - (T if u == 1 else 0)
        assert score.auc == auc(logits[rows].numpy(), samples.label[rows].numpy())
        assert np.isnan(score.accuracy)


def test_image_scores_accuracy_and_undefined_auc():
    # two videos: one with two classes (AUC defined), one of a single class (AUC undefined)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    samples = ImageSamples(
        pixels=torch.zeros(7, 1, 4, 4),
        label=labels,
        session=torch.tensor([0, 0, 0, 0, 1, 1, 1]),
        user=torch.zeros(7, dtype=torch.long),
        position=torch.tensor([0, 1, 2, 3, 0, 1, 2]),
        realtime=torch.zeros(2, 1, 4, 4),
    )
    logits = torch.full((7, 3), -5.0)
    logits[torch.arange(7), torch.tensor([0, 1, 1, 1, 2, 0, 2])] = 5.0
    first, second = session_scores(logits, samples, 2)
    assert first.accuracy == 0.75 and second.accuracy == 2 / 3
    assert 0.5 < first.auc <= 1.0 and np.isnan(second.auc)
