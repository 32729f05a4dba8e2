"""Ray Data at the edges: training batches and a split stream of sessions for the fleet.

Fixed-size list columns (history, negatives, pixels, realtime) arrive from Ray Data as
(B, width) tensors, which is why prepared Parquet uses them instead of variable lists.
Callers own ``ray.init``; these functions only build datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def _read(prepared_dir: str | Path, name: str, columns: list[str] | None = None):
    import ray.data

    path = Path(prepared_dir) / f"{name}.parquet"
    if not path.is_file():
        from pipelines.errors import DataError

        raise DataError(path, "not found; run `duet-sim data prepare` first")
    return ray.data.read_parquet(str(path), columns=columns)


def training_batches(
    prepared_dir: str | Path,
    split: str,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    columns: list[str] | None = None,
) -> Iterator[dict]:
    """Batches of a split as dicts of torch tensors (one entry per column).

    Rows are Parquet rows: for clicks one positive with its ``negatives`` (B, k) and
    ``history`` (B, L); for images one frame with ``pixels`` (B, C*H*W) uint8.

    Args:
        prepared_dir (str | Path): a prepared directory.
        split (str): ``"train"`` or ``"test"``.
        batch_size (int): rows per batch (the last batch may be smaller).
        shuffle_seed (int | None): if set, a seeded local shuffle (buffer of 8 batches).
        columns (list[str] | None): columns to read. Default: every numeric column.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected int >= 1, got {batch_size!r}")
    ds = _read(prepared_dir, split, columns)
    ds = ds.drop_columns([c for c in ("source",) if c in ds.columns()])
    kwargs = {}
    if shuffle_seed is not None:
        kwargs = {"local_shuffle_buffer_size": 8 * batch_size, "local_shuffle_seed": shuffle_seed}
    return iter(ds.iter_torch_batches(batch_size=batch_size, **kwargs))


def session_stream(
    prepared_dir: str | Path, n_consumers: int, *, split: str | None = "test", equal: bool = False
) -> list:
    """Split ``sessions.parquet`` into ``n_consumers`` streaming iterators (one per fleet actor).

    Each iterator is consumed concurrently (pass it to an actor); together they yield every
    session once (``equal=True`` drops a remainder to balance them).

    Args:
        prepared_dir (str | Path): a prepared directory.
        n_consumers (int): number of consumers.
        split (str | None): keep only sessions of this split; None keeps all.
        equal (bool): balance row counts exactly.

    Returns:
        list[ray.data.DataIterator]: ``n_consumers`` iterators.
    """
    if n_consumers < 1:
        raise ValueError(f"n_consumers: expected int >= 1, got {n_consumers!r}")
    from ray.data.expressions import col

    ds = _read(prepared_dir, "sessions")
    if split is not None:
        ds = ds.filter(expr=col("split") == split)
    # A small sessions file is one block, and blocks are the unit a split hands out:
    # cut it into a few blocks per consumer so every consumer gets work.
    ds = ds.repartition(4 * n_consumers)
    return ds.streaming_split(n_consumers, equal=equal)


def to_polars(batch) -> object:
    """A pyarrow batch/table from Ray Data -> polars DataFrame (zero-copy through Arrow)."""
    import polars as pl

    return pl.from_arrow(batch)
