"""Image/video datasets -> the tables of a prepared directory (sessions, train, test)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import DataError
from pipelines.sessions import assign_split


def image_sessions_schema(frame_bytes: int) -> pa.Schema:
    """``sessions.parquet`` for images: one row per video; ``realtime`` is its first frame."""
    return pa.schema([
        ("session", pa.int64()), ("user", pa.int32()), ("subject", pa.string()),
        ("sequence", pa.int32()), ("session_index", pa.int32()), ("split", pa.string()),
        ("label", pa.int32()), ("n_frames", pa.int32()),
        ("realtime", pa.list_(pa.uint8(), frame_bytes)),
    ])  # fmt: skip


def image_frames_schema(frame_bytes: int) -> pa.Schema:
    """``train.parquet``/``test.parquet`` for images: one row per frame, pixels uint8 (C, H, W)."""
    return pa.schema([
        ("user", pa.int32()), ("session", pa.int64()), ("position", pa.int32()),
        ("label", pa.int32()), ("pixels", pa.list_(pa.uint8(), frame_bytes)),
        ("source", pa.string()),
    ])  # fmt: skip


@dataclass
class ImageTables:
    """The tables of a prepared image dataset plus the counts that go into ``meta.json``."""

    sessions: pa.Table
    train: pa.Table
    test: pa.Table
    counts: dict[str, int]


def index_sessions(frames: pl.LazyFrame) -> pl.LazyFrame:
    """Dense ``user`` per subject and ``session_index`` per (subject, sequence), in name order.

    A subject's sequences are numbered in recording order, so the split's "last session"
    is the most recently recorded video of that subject.
    """
    return frames.sort("subject", "sequence", "position").with_columns(
        user=(pl.col("subject").rank("dense") - 1).cast(pl.Int32),
        session_index=(pl.col("sequence").rank("dense").over("subject") - 1).cast(pl.Int32),
    )


def _fixed_bytes(column: pl.Series, frame_bytes: int, path: str) -> pa.FixedSizeListArray:
    """Binary pixel column -> fixed-size uint8 list (Ray Data reads it as a (B, CHW) tensor)."""
    flat = np.frombuffer(b"".join(column.to_list()), dtype=np.uint8)
    if flat.size != frame_bytes * len(column):
        raise DataError(path, f"frames are not all {frame_bytes} bytes")
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), frame_bytes)


def build_image_tables(frames: pl.DataFrame, frame_bytes: int, test_sessions: int) -> ImageTables:
    """Split videos by time per subject and build the session and frame tables.

    Args:
        frames (pl.DataFrame): :data:`pipelines.ckplus.FRAMES_SCHEMA` rows.
        frame_bytes (int): C*H*W of every frame.
        test_sessions (int): each subject's last sessions that go to test (see assign_split).
    """
    df = assign_split(index_sessions(frames.lazy()), test_sessions).collect()
    sessions = df.group_by("session", maintain_order=True).agg(
        pl.col("user", "subject", "sequence", "session_index", "split").first(),
        label=pl.col("label").max(), n_frames=pl.len().cast(pl.Int32),
        realtime=pl.col("pixels").first(),
    )  # fmt: skip
    table = sessions.drop("realtime").to_arrow().append_column(
        "realtime", _fixed_bytes(sessions["realtime"], frame_bytes, "<sessions>")
    )
    splits = {}
    for split in ("train", "test"):
        part = df.filter(pl.col("split") == split)
        cols = part.select("user", "session", "position", "label").to_arrow()
        cols = cols.append_column("pixels", _fixed_bytes(part["pixels"], frame_bytes, split))
        cols = cols.append_column("source", part["source"].to_arrow())
        splits[split] = cols.cast(image_frames_schema(frame_bytes))
    counts = {
        "users": int(df["user"].max()) + 1, "sessions": table.num_rows, "frames": df.height,
        "train_sessions": int((sessions["split"] == "train").sum()),
        "test_sessions": int((sessions["split"] == "test").sum()),
        "train_rows": splits["train"].num_rows, "test_rows": splits["test"].num_rows,
    }  # fmt: skip
    return ImageTables(table.cast(image_sessions_schema(frame_bytes)), splits["train"],
                       splits["test"], counts)  # fmt: skip
