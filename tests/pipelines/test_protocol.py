"""The click protocol: sessions, split, history, real-time samples, negatives, determinism."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest

from pipelines.clicks import build_click_tables
from pipelines.errors import DataError
from pipelines.samples import sample_negatives, seen_keys
from pipelines.sessions import SessionOptions, k_core_filter, protocol


def _frame(rows):
    return pl.DataFrame([r[:3] for r in rows], schema=["user_id", "item_id", "ts"], orient="row")


def _build(rows, **kw):
    """Build tables for ``rows`` plus background users 998/999 clicking items 1..200, so the
    catalogue is large enough for negatives."""
    rows = list(rows) + [(998 + i // 101, i, i) for i in range(1, 201)]
    items = pl.DataFrame(
        schema={"item_id": pl.Int64, "title": pl.String, "genres": pl.List(pl.String)}
    )
    return build_click_tables(_frame(rows), items, SessionOptions(**kw), seed=3)


def test_history_realtime_and_sessions_follow_the_stream():
    # one user, 25 clicks on items 1..25 at increasing times
    rows = [(7, i, 100 * i) for i in range(1, 26)]
    t = _build(rows, session_length=10, history_length=30, realtime_size=4, test_negatives=5)
    sessions = t.sessions.filter(pa.compute.equal(t.sessions["user"], 0)).to_pylist()
    assert [s["n_clicks"] for s in sessions] == [5, 10, 10]  # aligned to the latest click
    assert [s["split"] for s in sessions] == ["train", "val", "test"]
    assert sessions[2]["items"] == list(range(16, 26))
    assert sessions[2]["realtime"] == [12, 13, 14, 15]  # R clicks strictly before the session
    assert sessions[0]["realtime"] == [0, 0, 0, 0]
    test = t.test.filter(pa.compute.equal(t.test["user"], 0)).to_pylist()
    assert test[0]["target"] == 16 and test[0]["history"][-15:] == list(range(1, 16))
    assert test[0]["history"][:15] == [0] * 15  # left-padded
    assert [r["position"] for r in test] == list(range(10))


def test_gap_sessions_and_test_sessions():
    ts = [0, 10, 20, 5000, 5010, 9000, 9010, 9020, 20000]
    rows = [(1, i + 1, t) for i, t in enumerate(ts)]
    t = _build(rows, session_gap_s=100, test_sessions=2, test_negatives=3, train_negatives=2)
    s = t.sessions.filter(pa.compute.equal(t.sessions["user"], 0)).to_pylist()
    assert [x["n_clicks"] for x in s] == [3, 2, 3, 1]
    assert [x["split"] for x in s] == ["train", "val", "test", "test"]


@pytest.mark.parametrize(
    ("n_sessions", "val_sessions", "expected"),
    [
        (1, 1, ["train"]),
        (2, 1, ["train", "test"]),  # a short user loses validation, never test
        (3, 1, ["train", "val", "test"]),
        (5, 2, ["train", "train", "val", "val", "test"]),
        (3, 0, ["train", "train", "test"]),  # no validation split: the old protocol
    ],
)
def test_validation_sessions_come_before_test_and_leave_a_train_session(
    n_sessions, val_sessions, expected
):
    rows = [(7, i, 100 * i) for i in range(1, 10 * n_sessions + 1)]
    t = _build(rows, val_sessions=val_sessions, test_negatives=5)
    sessions = t.sessions.filter(pa.compute.equal(t.sessions["user"], 0)).to_pylist()
    assert [s["split"] for s in sessions] == expected
    val = t.val.filter(pa.compute.equal(t.val["user"], 0))
    assert val.num_rows == 10 * expected.count("val")
    assert val.schema.field("negatives").type.list_size == 5  # scored like test


def test_single_session_user_is_train_only():
    rows = [(1, i, i) for i in range(1, 6)] + [(2, i, i) for i in range(1, 26)]
    t = _build(rows, test_negatives=3)
    users = set(t.test["user"].to_pylist())
    assert users == {1, 2, 3}  # raw users 2, 998, 999; raw user 1 (one session) has no test rows


def test_negatives_are_unseen_and_distinct():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 30)
    items = rng.integers(1, 201, size=users.size)
    seen = seen_keys(users, items, 200)
    neg = sample_negatives(np.random.default_rng(1), np.arange(50).repeat(4), seen, 200, 100)
    assert neg.shape == (200, 100)
    assert all(len(set(r)) == 100 for r in neg)
    pairs = set(zip(users.tolist(), items.tolist(), strict=True))
    assert not any(
        (u, i) in pairs for u, row in zip(np.arange(50).repeat(4), neg, strict=True) for i in row
    )


def test_negatives_impossible_is_a_data_error():
    seen = seen_keys(np.zeros(8, dtype=int), np.arange(1, 9), 10)
    with pytest.raises(DataError, match="fewer than 5 unseen"):
        sample_negatives(np.random.default_rng(0), np.zeros(3, dtype=int), seen, 10, 5)


def test_k_core_reaches_a_fixed_point():
    rows = [(u, i, 0) for u in range(1, 6) for i in range(1, 6)] + [(9, 99, 0), (9, 1, 1)]
    out = k_core_filter(_frame(rows).lazy(), 3).collect()
    assert out["user_id"].n_unique() == 5 and 99 not in out["item_id"].to_list()


def test_same_seed_same_tables_and_order_independent():
    rng = np.random.default_rng(0)
    rows = [
        (u, int(i), int(t))
        for u in range(1, 21)
        for i, t in zip(rng.choice(60, 30, replace=False) + 1, rng.integers(0, 99, 30), strict=True)
    ]
    a = _build(rows, test_negatives=20)
    b = _build(list(reversed(rows)), test_negatives=20)  # file order must not matter
    for name in ("sessions", "train", "test"):
        assert getattr(a, name).equals(getattr(b, name)), name


def test_protocol_stage_is_lazy():
    lf = protocol(_frame([(1, 2, 3)]).lazy(), SessionOptions())
    assert isinstance(lf, pl.LazyFrame)


def test_options_validation_quotes_key_and_value():
    with pytest.raises(ValueError, match=r"session_length: expected int >= 1, got 0"):
        SessionOptions(session_length=0)
