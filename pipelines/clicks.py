"""Click datasets -> the Arrow tables of a prepared directory (sessions, splits, items)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import DataError
from pipelines.names import SPLITS
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


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    """(m, w) int32 -> Arrow fixed-size list column without a per-row copy."""
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


@dataclass
class ClickTables:
    """The tables of a prepared click dataset plus the counts that go into ``meta.json``."""

    sessions: pa.Table
    train: pa.Table
    val: pa.Table
    test: pa.Table
    items: pa.Table
    counts: dict[str, int]


@dataclass
class ClickPart:
    """One chunk of users' rows of ``sessions`` and of every split."""

    sessions: pa.Table
    splits: dict[str, pa.Table]
    users: int
    interactions: int


class ClickParts:
    """The protocol over a population chunk by chunk, for populations too big to hold
    (pipelines/synthetic.py, ``synthetic_click_chunks``): iterate for the `ClickPart` of
    each chunk; once the last is out, `items` and `counts` cover all of them.

    ``chunks()`` yields interaction frames of disjoint users in raw-id order, and is called
    twice: once for the item vocabulary no chunk sees whole, once for the rows. A single
    chunk is exactly the whole-frame protocol (k-core included, which needs every user at
    once and so one chunk); chunk c > 0 draws its negatives from its own streams.
    """

    def __init__(
        self,
        chunks: Callable[[], Iterable[pl.DataFrame]],
        items: pl.DataFrame,
        options: SessionOptions,
        seed: int,
    ):
        self.chunks, self.items_meta, self.options, self.seed = chunks, items, options, seed
        seen = [c["item_id"].unique().to_numpy() for c in chunks()]
        if len(seen) > 1 and options.k_core > 0:
            raise ValueError("k_core: needs every user at once, not a population in chunks")
        # one chunk: its own ranks (after the k-core filter), as the whole-frame protocol
        self.vocabulary = np.unique(np.concatenate(seen)) if len(seen) > 1 else None
        self.raw_items: np.ndarray | None = self.vocabulary
        self.popularity = np.zeros(0, np.int64)
        self._counts: Counter[str] = Counter()
        # both set once the last chunk has been iterated
        self.items: pa.Table | None = None
        self.counts: dict[str, int] = {}

    def __iter__(self) -> Iterator[ClickPart]:
        users = sessions = 0
        for c, chunk in enumerate(self.chunks()):
            part = self._part(c, chunk, users, sessions)
            users += part.users
            sessions += part.sessions.num_rows
            yield part
        self.items = _items_table(self.raw_items, self.items_meta, self.popularity)
        genres = {g for gs in self.items["genres"].to_pylist() for g in gs}
        self.counts = {
            "users": self._counts["users"],
            "items": len(self.raw_items),
            "interactions": self._counts["interactions"],
            "sessions": self._counts["sessions"],
            **{k: v for k, v in self._counts.items() if k.startswith(SPLITS)},
            "genres": len(genres),
        }

    def _part(self, c: int, chunk: pl.DataFrame, first_user: int, first_session: int) -> ClickPart:
        o = self.options
        lf = protocol(chunk.lazy(), o, self.vocabulary, first_user, first_session)
        df = lf.collect()
        if df.height == 0:
            raise DataError("<interactions>", f"no interactions left after k_core={o.k_core}")
        if self.raw_items is None:
            self.raw_items = np.unique(df["raw_item_id"].to_numpy())
        num_items = len(self.raw_items)
        item_arr, users = df["item"].to_numpy(), df["user"].to_numpy()
        user_start = np.searchsorted(users, users, side="left")  # rows are sorted by user
        seen = seen_keys(users, item_arr, num_items)
        splits = {}
        # streams 0 and 1 are train and test as before validation existed; val is scored like
        # test (same number of negatives) so that its metrics estimate the test metrics
        for stream, (split, k) in enumerate(
            (("train", o.train_negatives), ("test", o.test_negatives), ("val", o.test_negatives))
        ):
            rows = np.flatnonzero(df["split"].to_numpy() == split)
            rng = np.random.default_rng([self.seed, stream] + ([c] if c else []))
            sample = (item_arr, user_start, seen, num_items)
            splits[split] = _samples_table(df, rows, *sample, rng, o, k)
        train = item_arr[df["split"].to_numpy() == "train"]
        popularity = np.bincount(train, minlength=num_items + 1)
        self.popularity = popularity if c == 0 else self.popularity + popularity
        part = ClickPart(
            _sessions_table(df, item_arr, user_start, o.realtime_size),
            splits,
            int(users.max()) + 1 - first_user,
            df.height,
        )
        self._counts.update(
            interactions=part.interactions,
            sessions=part.sessions.num_rows,
            **split_counts(part.sessions["split"], splits),
        )
        self._counts["users"] = first_user + part.users
        return part


def build_click_tables(
    interactions: pl.DataFrame, items: pl.DataFrame, options: SessionOptions, seed: int
) -> ClickTables:
    """Run the protocol on a whole frame and build every table in memory (docs/data.md).

    Args:
        interactions (pl.DataFrame): ``user_id, item_id, ts`` (raw ids).
        items (pl.DataFrame): ``item_id, title, genres`` (may be empty).
        options (SessionOptions): the protocol knobs.
        seed (int): seeds the negative sampler; train and test draw from separate streams.

    Raises:
        DataError: if no interaction survives filtering, or negatives cannot be drawn.
    """
    parts = ClickParts(lambda: [interactions], items, options, seed)
    (part,) = parts
    return ClickTables(part.sessions, *(part.splits[s] for s in SPLITS), parts.items, parts.counts)


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
    num_items: int,
    rng: np.random.Generator,
    options: SessionOptions,
    k: int,
) -> pa.Table:
    """One row per positive in ``rows``: its history window and ``k`` sampled negatives from
    the ``num_items`` of the whole population (a chunk may not click its last items)."""
    history = windows(item_arr, user_start[rows], rows, options.history_length)
    users = df["user"].to_numpy()[rows]
    negatives = sample_negatives(rng, users, seen, num_items, k)
    cols = df.select("user", "session", "position", "ts", target="item")[rows].to_arrow()
    cols = cols.append_column("history", _fixed(history))
    cols = cols.append_column("negatives", _fixed(negatives))
    return cols.cast(click_samples_schema(options.history_length, k))


def _items_table(raw_items: np.ndarray, items: pl.DataFrame, popularity: np.ndarray) -> pa.Table:
    """Dense item vocabulary (item i is ``raw_items[i - 1]``) with genres and train
    popularity (shift operators use both)."""
    vocab = (
        pl.DataFrame(
            {
                "item": np.arange(1, len(raw_items) + 1, dtype=np.int32),
                "raw_item_id": raw_items.astype(np.int64),
            }
        )
        .join(items.rename({"item_id": "raw_item_id"}), on="raw_item_id", how="left")
        .sort("item")
        .with_columns(
            title=pl.col("title").fill_null(""),
            genres=pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        )
    )
    vocab = vocab.with_columns(popularity=pl.Series(popularity[vocab["item"].to_numpy()]))
    return vocab.to_arrow().cast(ITEMS_OUT_SCHEMA)
