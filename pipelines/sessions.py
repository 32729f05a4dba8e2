"""The paper's click protocol as pure polars stages: ids, k-core, sessions, time split.

Stages are ``pl.LazyFrame -> pl.LazyFrame``; the output schema of each sits beside it.
Sorting is by ``(user, ts, item)`` so ties in time (common in MovieLens) are broken the
same way on every run, which is what makes the Parquet byte-identical per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.names import SPLITS


@dataclass(frozen=True)
class SessionOptions:
    """How a user's click stream becomes sessions and samples (docs/data.md; paper Sec. 4.1).

    Attributes:
        session_length (int): clicks per session when cutting by length. Default: 10.
        session_gap_s (int | None): if set, a new session starts after this many seconds of
            inactivity instead (sessions then have varying lengths). Default: None.
        test_sessions (int): each user's last ``test_sessions`` sessions are test; a user
            always keeps at least one train session. Default: 1.
        val_sessions (int): the ``val_sessions`` sessions before those are validation, for
            model selection (epochs, settings), so the test split is read once, for the final
            numbers; a user keeps at least one train session first. 0: no validation split.
            Default: 1.
        history_length (int): previous clicks kept as a sample's history (paper: 30).
        realtime_size (int): R, the user's most recent clicks before a session. Default: 10.
        train_negatives (int): sampled negatives per training positive (paper: 4).
        test_negatives (int): sampled negatives per test positive (paper: 100).
        k_core (int): if > 0, repeatedly drop users and items with fewer interactions.
        folds (int): image datasets only: if >= 2, split by subject into this many
            cross-validation folds (pipelines/folds.py) instead of by time; 0: the time
            split. Default: 0.
        fold (int): with ``folds``, the fold whose subjects are the test split, in
            ``[0, folds)``; the next fold's subjects are validation. Default: 0.
    """

    session_length: int = 10
    session_gap_s: int | None = None
    test_sessions: int = 1
    val_sessions: int = 1
    history_length: int = 30
    realtime_size: int = 10
    train_negatives: int = 4
    test_negatives: int = 100
    k_core: int = 0
    folds: int = 0
    fold: int = 0

    def __post_init__(self) -> None:
        positive = (
            "session_length",
            "test_sessions",
            "history_length",
            "realtime_size",
            "train_negatives",
            "test_negatives",
        )
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected int >= 1, got {value!r}")
        for key in ("k_core", "val_sessions"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{key}: expected int >= 0, got {value!r}")
        if self.folds == 1 or not isinstance(self.folds, int) or self.folds < 0:
            raise ValueError(f"folds: expected 0 (time split) or an int >= 2, got {self.folds!r}")
        if not isinstance(self.fold, int) or not 0 <= self.fold < max(self.folds, 1):
            raise ValueError(
                f"fold: expected an int in [0, {max(self.folds, 1)}), got {self.fold!r}"
            )
        if self.session_gap_s is not None and self.session_gap_s <= 0:
            raise ValueError(f"session_gap_s: expected seconds > 0, got {self.session_gap_s!r}")


# -- stage: k-core ---------------------------------------------------------------------------


def k_core_filter(lf: pl.LazyFrame, k: int) -> pl.LazyFrame:
    """Keep interactions whose user and item each have >= ``k`` interactions, to a fixed point.

    Dropping items can push users under ``k`` again, hence the loop (each pass collects the
    row count, a sync point; MovieLens converges in a few passes).
    """
    if k <= 0:
        return lf
    height = -1
    while True:
        lf = lf.filter((pl.len().over("user_id") >= k) & (pl.len().over("item_id") >= k)).cache()
        new_height = lf.select(pl.len()).collect().item()
        if new_height == height:
            return lf
        height = new_height


# -- stage: dense ids ------------------------------------------------------------------------

ENCODED_SCHEMA = pa.schema(
    [
        ("user", pa.int32()),
        ("item", pa.int32()),
        ("raw_user_id", pa.int64()),
        ("raw_item_id", pa.int64()),
        ("ts", pa.int64()),
    ]
)


def encode_ids(
    lf: pl.LazyFrame, vocabulary: np.ndarray | None = None, first_user: int = 0
) -> pl.LazyFrame:
    """Dense ids: users 0..U-1 and items 1..N (0 is padding), both in raw-id order.

    A chunk of a population prepared chunk by chunk gets its users numbered from
    ``first_user`` and its items from the whole population's sorted raw ids ``vocabulary``
    (no chunk sees every item); without them, the ranks of this frame's own ids.
    """
    if vocabulary is None:
        item = pl.col("item_id").rank("dense")
    else:
        item = pl.col("item_id").replace_strict(vocabulary, np.arange(1, len(vocabulary) + 1))
    return lf.select(
        user=(pl.col("user_id").rank("dense") - 1 + first_user).cast(pl.Int32),
        item=item.cast(pl.Int32),
        raw_user_id="user_id",
        raw_item_id="item_id",
        ts="ts",
    )


# -- stage: sessions -------------------------------------------------------------------------

SESSIONIZED_SCHEMA = pa.schema(
    list(ENCODED_SCHEMA) + [("session_index", pa.int32()), ("position", pa.int32())]
)


def sessionize(lf: pl.LazyFrame, session_length: int, session_gap_s: int | None) -> pl.LazyFrame:
    """Cut each user's time-ordered stream into sessions, by length or by inactivity gap.

    By length, sessions are aligned to the user's most recent click (see below).

    Adds ``session_index`` (k-th session of the user) and ``position`` (t within the session).
    """
    lf = lf.sort("user", "ts", "item")
    if session_gap_s is None:
        # Counted back from the latest click: the oldest session is the partial one, so
        # every test (last) session is a full ``session_length`` clicks.
        back = (pl.len() - 1 - pl.int_range(pl.len())).over("user") // session_length
        index = back.max().over("user") - back
    else:
        gap = pl.col("ts").diff().over("user").fill_null(0) > session_gap_s
        index = gap.cast(pl.Int32).cum_sum().over("user")
    lf = lf.with_columns(session_index=index.cast(pl.Int32))
    position = pl.int_range(pl.len()).over("user", "session_index")
    return lf.with_columns(position=position.cast(pl.Int32))


# -- stage: split ----------------------------------------------------------------------------

SPLIT_SCHEMA = pa.schema(
    list(SESSIONIZED_SCHEMA) + [("split", pa.string()), ("session", pa.int64())]
)


def assign_split(lf: pl.LazyFrame, test_sessions: int, val_sessions: int = 0) -> pl.LazyFrame:
    """Time-based split: a user's last ``test_sessions`` sessions are test, the
    ``val_sessions`` before them validation, earlier ones train.

    A user with n sessions gets ``n_test = min(test_sessions, n - 1)`` test sessions and
    ``min(val_sessions, n - n_test - 1)`` validation sessions, so everyone keeps train
    history, single-session users are train only, and validation is taken before test
    (a user short of sessions loses validation, never test, so the test split is the same
    with or without validation). Also numbers sessions globally (``session``) in
    (user, session_index) order; rows must arrive sorted that way.
    """
    n_sessions = pl.col("session_index").max().over("user") + 1
    n_test = pl.min_horizontal(pl.lit(test_sessions), n_sessions - 1)
    n_val = pl.min_horizontal(pl.lit(val_sessions), n_sessions - n_test - 1)
    is_test = pl.col("session_index") >= n_sessions - n_test
    is_val = pl.col("session_index") >= n_sessions - n_test - n_val
    new = (pl.col("user") != pl.col("user").shift(1)) | (
        pl.col("session_index") != pl.col("session_index").shift(1)
    )
    split = pl.when(is_test).then(pl.lit("test")).when(is_val).then(pl.lit("val"))
    return lf.with_columns(
        split=split.otherwise(pl.lit("train")),
        session=(new.fill_null(True).cast(pl.Int64).cum_sum() - 1),
    )


def split_counts(session_split: pa.ChunkedArray, splits: dict[str, pa.Table]) -> dict[str, int]:
    """``<split>_sessions`` and ``<split>_rows`` for every split, for ``meta.json``."""
    names, counts = pc.value_counts(session_split).flatten()
    per_split = dict(zip(names.to_pylist(), counts.to_pylist(), strict=True))
    out = {f"{s}_sessions": int(per_split.get(s, 0)) for s in SPLITS}
    return out | {f"{s}_rows": splits[s].num_rows for s in SPLITS}


def protocol(
    lf: pl.LazyFrame,
    options: SessionOptions,
    vocabulary: np.ndarray | None = None,
    first_user: int = 0,
    first_session: int = 0,
) -> pl.LazyFrame:
    """All click stages in order: k-core, dense ids, sessions, split. A chunk of a larger
    population passes where its ids start (`encode_ids`) and its first session number."""
    lf = k_core_filter(lf, options.k_core)
    lf = encode_ids(lf, vocabulary, first_user)
    lf = sessionize(lf, options.session_length, options.session_gap_s)
    lf = assign_split(lf, options.test_sessions, options.val_sessions)
    return lf.with_columns(session=pl.col("session") + first_session)
