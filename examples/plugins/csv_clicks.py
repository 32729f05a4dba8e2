"""A new dataset in one file: any click log as a CSV, for users bringing their own logs.

``csv-clicks`` reads ``clicks.csv`` from its folder (``DATA_DIR/clicks-csv/``, or the data
dir itself): a header ``user,item,timestamp`` and an optional ``rating`` column (every row is
a click; ratings are dropped, as MovieLens's are); user and item ids are integers, timestamps
integer seconds. An optional ``items.csv`` (``item,title,genres``, genres ``|``-separated)
names the items and gives genre shifts their genres; without it every item has the genre
``unknown``. The paper's protocol then applies as to MovieLens (docs/data.md). docs/plugins.md
walks through it.

    duet-sim data prepare --plugin examples.plugins.csv_clicks --dataset csv-clicks \\
        --data-dir DIR --out data/mylog
    # a scenario:  plugins: [examples.plugins.csv_clicks]
    #              data: {dataset: csv-clicks, data_dir: DIR}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipelines.datasets import DATASETS, ClickDataset
from pipelines.errors import DataError

COLUMNS = {"user": "user_id", "item": "item_id", "timestamp": "ts"}


@DATASETS.register("csv-clicks")
class CsvClicks(ClickDataset):
    """A click log ``user,item,timestamp[,rating]`` with optional item names and genres."""

    folders = ("clicks-csv",)

    def read(self, source: Path | None, knobs: Any, seed: int, image_size: int):
        assert source is not None, "csv-clicks is read from files"
        clicks = _read_clicks(source / "clicks.csv")
        items_file = source / "items.csv"
        items = _read_items(items_file) if items_file.is_file() else _unnamed(clicks)
        return (lambda: [clicks]), items


def _read_clicks(path: Path) -> pl.DataFrame:
    """The clicks as ``user_id, item_id, ts`` (int64), naming the file and column on error."""
    if not path.is_file():
        raise DataError(path, "not found (a csv-clicks folder holds clicks.csv)")
    try:
        frame = pl.read_csv(path, infer_schema_length=0)  # every column as text, cast below
    except pl.exceptions.PolarsError as exc:
        raise DataError(path, f"not a CSV file ({exc})") from exc
    missing = sorted(set(COLUMNS) - set(frame.columns))
    if missing:
        raise DataError(path, f"missing column(s) {missing}; the header needs {list(COLUMNS)}")
    try:
        return frame.select(pl.col(c).cast(pl.Int64).alias(n) for c, n in COLUMNS.items())
    except pl.exceptions.PolarsError as exc:
        raise DataError(path, f"user, item and timestamp must be integers ({exc})") from exc


def _read_items(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, infer_schema_length=0)
    return frame.select(
        item_id=pl.col("item").cast(pl.Int64),
        title=pl.col("title"),
        genres=pl.col("genres").str.split("|"),
    )


def _unnamed(clicks: pl.DataFrame) -> pl.DataFrame:
    ids = clicks["item_id"].unique().sort()
    return pl.DataFrame(
        {
            "item_id": ids,
            "title": [f"item {i}" for i in ids],
            "genres": [["unknown"]] * len(ids),
        }
    )
