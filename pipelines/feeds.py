"""Ray Data as the training feed: a prepared split streamed batch by batch, never whole.

`duet-sim train --stream` trains from a `ParquetFeed` instead of loading the train split
into memory: Ray Data reads the Parquet in blocks, shuffles block order and rows within a
buffer, and each batch becomes the same `Samples` the in-memory path builds
(`pipelines.tensors.samples_from_table`), so the model code cannot tell the two apart.
What stays in memory is every session's real-time window (``sessions.parquet``, one row
per session, which the generator reads), a batch, and Ray Data's shuffle buffer.

Fixed-size list columns (history, negatives, pixels, realtime) are why prepared Parquet
converts to tensors without per-row Python. Callers own ``ray.init``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.errors import DataError
from pipelines.tensors import load_meta, load_realtime, samples_from_table

SHUFFLE_BUFFER_ROWS = 16_384  # Parquet rows (impressions or frames) Ray Data mixes at once


class ParquetFeed:
    """One split of a prepared directory, streamed: ``len`` and batches like `Samples`.

    Click rows keep a positive with its sampled negatives in one batch (a Parquet row is
    one impression), as `duet.data.iterate_batches` keeps them together when it shuffles.

    Args:
        prepared_dir (str | Path): a `duet-sim data prepare` output.
        split (str): the split to stream, ``"train"`` by default.
        shuffle_buffer (int): Parquet rows shuffled together (Ray Data's local buffer).

    Raises:
        DataError: the split's file is missing.
    """

    def __init__(
        self,
        prepared_dir: str | Path,
        split: str = "train",
        *,
        shuffle_buffer: int = SHUFFLE_BUFFER_ROWS,
    ):
        self.path = Path(prepared_dir) / f"{split}.parquet"
        if not self.path.is_file():
            raise DataError(self.path, "not found; run `duet-sim data prepare` first")
        self.meta = load_meta(prepared_dir)
        self.realtime = load_realtime(prepared_dir, self.meta)
        schema = pq.read_schema(self.path)
        clicks = self.meta["kind"] == "clicks"
        self.rows_per_record = schema.field("negatives").type.list_size + 1 if clicks else 1
        self.records = pq.ParquetFile(self.path).metadata.num_rows
        self.shuffle_buffer = shuffle_buffer

    def __len__(self) -> int:
        """Sample rows, as ``len(load_samples(...))`` counts them."""
        return self.records * self.rows_per_record

    def records_per_batch(self, batch_size: int) -> int:
        return max(1, batch_size // self.rows_per_record)

    def num_batches(self, batch_size: int) -> int:
        return -(-self.records // self.records_per_batch(batch_size))

    def batches(self, batch_size: int, *, shuffle: bool, seed: int | None = None) -> Iterator:
        """Batches of at most ``batch_size`` sample rows; with ``shuffle``, in an order that
        ``seed`` fixes (block order and a local shuffle buffer, Ray Data's)."""
        import ray.data

        # blocks in a fixed order, whichever read task finishes first: the seed fixes it all
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ds = ray.data.read_parquet(str(self.path))
        options = {}
        if shuffle:
            ds = ds.randomize_block_order(seed=seed)
            options = {"local_shuffle_buffer_size": self.shuffle_buffer, "local_shuffle_seed": seed}
        for table in ds.iter_batches(
            batch_size=self.records_per_batch(batch_size), batch_format="pyarrow", **options
        ):
            yield samples_from_table(table, self.realtime, self.meta)
