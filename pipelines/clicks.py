"""Click datasets -> the Arrow tables of a prepared directory (sessions, splits, items)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import DataError
from pipelines.samples import sample_negatives, seen_keys, windows
from pipelines.sessions import SessionOptions, protocol, split_counts


def click_sessions_schema(realtime_size: int) -> pa.Schema:
    """``sessions.parquet`` for clicks: one row per session, ``session`` == row number."""
    return pa.schema(
        [
            ("session", pa.int64()),
            ("user", pa.int32()),
            ("raw_user_id", pa.int64()),
            ("session_index", pa.int32()),
            ("split", pa.string()),
            ("start_ts", pa.int64()),
            ("end_ts", pa.int64()),
            ("n_clicks", pa.int32()),
            ("items", pa.list_(pa.int32())),
            ("realtime", pa.list_(pa.int32(), realtime_size)),
        ]
    )


def click_samples_schema(history_length: int, negatives: int) -> pa.Schema:
    """``train.parquet``/``test.parquet`` for clicks: one row per positive, negatives inline."""
    return pa.schema(
        [
            ("user", pa.int32()),
            ("session", pa.int64()),
            ("position", pa.int32()),
            ("ts", pa.int64()),
            ("target", pa.int32()),
            ("history", pa.list_(pa.int32(), history_length)),
            ("negatives", pa.list_(pa.int32(), negatives)),
        ]
    )


ITEMS_OUT_SCHEMA = pa.schema(
    [
        ("item", pa.int32()),
        ("raw_item_id", pa.int64()),
        ("title", pa.string()),
        ("genres", pa.list_(pa.string())),
        ("popularity", pa.int64()),
    ]
)


@dataclass
class ClickTables:
    """The tables of a prepared click dataset plus the counts that go into ``meta.json``."""

    sessions: pa.Table
    train: pa.Table
    val: pa.Table
    test: pa.Table
    items: pa.Table
    counts: dict[str, int]


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    """(m, w) int32 -> Arrow fixed-size list column without a per-row copy."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def build_click_tables(
    interactions: pl.DataFrame, items: pl.DataFrame, options: SessionOptions, seed: int
) -> ClickTables:
    """Run the protocol and build every table (see docs/data.md for the columns).

    Args:
        interactions (pl.DataFrame): ``user_id, item_id, ts`` (raw ids).
        items (pl.DataFrame): ``item_id, title, genres`` (may be empty).
        options (SessionOptions): the protocol knobs.
        seed (int): seeds the negative sampler; train and test draw from separate streams.

    Raises:
        DataError: if no interaction survives filtering, or negatives cannot be drawn.
    """
    df = protocol(interactions.lazy(), options).collect()
    if df.height == 0:
        raise DataError("<interactions>", f"no interactions left after k_core={options.k_core}")
    item_arr, users = df["item"].to_numpy(), df["user"].to_numpy()
    num_items = int(item_arr.max())
    user_start = np.searchsorted(users, users, side="left")  # rows are sorted by user
    seen = seen_keys(users, item_arr, num_items)
    sessions = _sessions_table(df, item_arr, user_start, options.realtime_size)
    splits = {}
    # streams 0 and 1 are train and test as before validation existed; val is scored like
    # test (same number of negatives) so that its metrics estimate the test metrics
    for stream, (split, k) in enumerate(
        (
            ("train", options.train_negatives),
            ("test", options.test_negatives),
            ("val", options.test_negatives),
        )
    ):
        rows = np.flatnonzero(df["split"].to_numpy() == split)
        rng = np.random.default_rng([seed, stream])
        splits[split] = _samples_table(df, rows, item_arr, user_start, seen, rng, options, k)
    items_table = _items_table(df, items, num_items)
    counts = {
        "users": int(users.max()) + 1,
        "items": num_items,
        "interactions": df.height,
        "sessions": sessions.num_rows,
        **split_counts(sessions["split"], splits),
        "genres": len({g for gs in items_table["genres"].to_pylist() for g in gs}),
    }
    return ClickTables(
        sessions, splits["train"], splits["val"], splits["test"], items_table, counts
    )


def _sessions_table(
    df: pl.DataFrame, item_arr: np.ndarray, user_start: np.ndarray, realtime_size: int
) -> pa.Table:
    """One row per session; real-time samples = the R clicks strictly before its first click."""
    grouped = (
        df.with_row_index("row")
        .group_by("session", maintain_order=True)
        .agg(
            pl.col("user").first(),
            pl.col("raw_user_id").first(),
            pl.col("session_index").first(),
            pl.col("split").first(),
            start_ts=pl.col("ts").min(),
            end_ts=pl.col("ts").max(),
            n_clicks=pl.len().cast(pl.Int32),
            items=pl.col("item"),
            first=pl.col("row").first(),
        )
    )
    first = grouped["first"].to_numpy().astype(np.int64)
    realtime = windows(item_arr, user_start[first], first, realtime_size)
    table = grouped.drop("first").to_arrow()
    table = table.append_column("realtime", _fixed(realtime))
    return table.cast(click_sessions_schema(realtime_size))


def _samples_table(
    df: pl.DataFrame,
    rows: np.ndarray,
    item_arr: np.ndarray,
    user_start: np.ndarray,
    seen: np.ndarray,
    rng: np.random.Generator,
    options: SessionOptions,
    k: int,
) -> pa.Table:
    """One row per positive in ``rows``: its history window and ``k`` sampled negatives."""
    history = windows(item_arr, user_start[rows], rows, options.history_length)
    users = df["user"].to_numpy()[rows]
    negatives = sample_negatives(rng, users, seen, int(item_arr.max()), k)
    cols = df.select("user", "session", "position", "ts", target="item")[rows].to_arrow()
    cols = cols.append_column("history", _fixed(history))
    cols = cols.append_column("negatives", _fixed(negatives))
    return cols.cast(click_samples_schema(options.history_length, k))


def _items_table(df: pl.DataFrame, items: pl.DataFrame, num_items: int) -> pa.Table:
    """Dense item vocabulary with genres and train popularity (shift operators use both)."""
    train = df.filter(pl.col("split") == "train")
    popularity = np.bincount(train["item"].to_numpy(), minlength=num_items + 1)
    vocab = (
        df.select("item", "raw_item_id")
        .unique()
        .sort("item")
        .join(items.rename({"item_id": "raw_item_id"}), on="raw_item_id", how="left")
        .with_columns(
            title=pl.col("title").fill_null(""),
            genres=pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
    )
    vocab = vocab.with_columns(popularity=pl.Series(popularity[vocab["item"].to_numpy()]))
    return vocab.to_arrow().cast(ITEMS_OUT_SCHEMA)
