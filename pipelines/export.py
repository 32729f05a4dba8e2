"""Export a prepared click split to the DUET reference repository's text format.

One line per scored candidate: ``user;item;trigger_seq;click_seq;label``, where
``trigger_seq`` is the session's real-time samples and ``click_seq`` the candidate's history,
both comma-separated item ids, oldest first, **right-padded with 0 to a fixed length** (R and
L of the prepared data); the positive comes first, then its negatives.

Why fixed length and right padding: the authors' loader (``code/loader/
multi_metric_meta_sequence_dataloader.py``) parses each sequence with
``np.fromstring(..., sep=",")`` and ``np.stack``s a batch, which needs every row the same
length, and their models read the user state at index ``(number of non-zero ids) - 1``
(``code/model/sasrec/model_fn.py``), which is the last click only when clicks come first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipelines.errors import DataError
from pipelines.names import SPLITS
from pipelines.tensors import fixed_to_numpy, load_meta, read_table


def right_padded(ids: np.ndarray) -> np.ndarray:
    """(n, w) left-padded id rows -> the same ids, in order, followed by their 0 padding."""
    order = np.argsort(ids == 0, axis=1, kind="stable")  # non-zero first, order kept
    return np.take_along_axis(ids, order, axis=1)


def _joined(ids: np.ndarray) -> pl.Series:
    """(n, w) ids -> n strings ``"3,17,42,0,0"``."""
    return pl.Series(ids.astype(np.int64)).cast(pl.List(pl.String)).list.join(",")


def export_duet(prepared_dir: str | Path, dest: str | Path, splits=SPLITS) -> list[Path]:
    """Write ``dest/<split>.txt`` for each split; returns the files written.

    Raises:
        DataError: the directory is not a prepared click dataset.
    """
    prepared_dir, dest = Path(prepared_dir), Path(dest)
    if load_meta(prepared_dir)["kind"] != "clicks":
        raise DataError(prepared_dir, "DUET text export is defined for click datasets only")
    realtime = right_padded(
        fixed_to_numpy(read_table(prepared_dir / "sessions.parquet", ["realtime"])["realtime"])
    )  # (S, R): row s is session s
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        table = read_table(prepared_dir / f"{split}.parquet")
        session = table["session"].to_numpy()
        rows = pl.DataFrame(
            {
                "user": table["user"].to_numpy(),
                "trigger_seq": _joined(realtime[session]),
                "click_seq": _joined(right_padded(fixed_to_numpy(table["history"]))),
                "item": np.concatenate(
                    [table["target"].to_numpy()[:, None], fixed_to_numpy(table["negatives"])],
                    axis=1,
                ),
            }
        ).with_row_index("group")
        lines = (
            rows.explode("item")
            .with_columns(label=(pl.int_range(pl.len()).over("group") == 0).cast(pl.Int8))
            .select(
                pl.concat_str(["user", "item", "trigger_seq", "click_seq", "label"], separator=";")
            )
        )
        path = dest / f"{split}.txt"
        tmp = path.with_suffix(".txt.tmp")
        lines.write_csv(tmp, include_header=False, quote_style="never")
        tmp.replace(path)
        written.append(path)
    return written
