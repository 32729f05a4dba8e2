"""Export a prepared click split to the DUET reference repository's text format.

One line per scored candidate: ``user;item;trigger_seq;click_seq;label``, where
``trigger_seq`` is the session's real-time samples and ``click_seq`` the candidate's history
(both comma-separated item ids, oldest first, padding dropped); the positive comes first,
then its negatives.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.errors import DataError
from pipelines.tensors import load_meta


def _ids(column: str) -> pl.Expr:
    """Fixed-size id array -> ``"3,17,42"`` without the 0 padding."""
    return (
        pl.col(column).arr.to_list()
        .list.eval(pl.element().filter(pl.element() != 0).cast(pl.String))
        .list.join(",")
    )  # fmt: skip


def export_duet(prepared_dir: str | Path, dest: str | Path, splits=("train", "test")) -> list[Path]:
    """Write ``dest/<split>.txt`` for each split; returns the files written.

    Raises:
        DataError: the directory is not a prepared click dataset.
    """
    prepared_dir, dest = Path(prepared_dir), Path(dest)
    if load_meta(prepared_dir)["kind"] != "clicks":
        raise DataError(prepared_dir, "DUET text export is defined for click datasets only")
    sessions = pl.read_parquet(prepared_dir / "sessions.parquet", columns=["session", "realtime"])
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        rows = pl.read_parquet(prepared_dir / f"{split}.parquet").with_row_index("group")
        lines = (
            rows.join(sessions, on="session", how="left")
            .select("group", "user", trigger_seq=_ids("realtime"), click_seq=_ids("history"),
                    item=pl.concat_list(pl.col("target"), pl.col("negatives").arr.to_list()))
            .explode("item")
            .with_columns(label=(pl.int_range(pl.len()).over("group") == 0).cast(pl.Int8))
            .select(pl.concat_str(["user", "item", "trigger_seq", "click_seq", "label"],
                                  separator=";"))
        )  # fmt: skip
        path = dest / f"{split}.txt"
        tmp = path.with_suffix(".txt.tmp")
        lines.write_csv(tmp, include_header=False, quote_style="never")
        tmp.replace(path)
        written.append(path)
    return written
