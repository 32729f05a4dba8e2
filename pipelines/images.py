"""Image/video datasets -> the tables of a prepared directory (sessions, train, test)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import DataError
from pipelines.folds import fold_split, subject_folds
from pipelines.sessions import SPLITS, SessionOptions, assign_split, split_counts


def image_sessions_schema(frame_bytes: int) -> pa.Schema:
    """``sessions.parquet`` for images: one row per video; ``realtime`` is its first frame."""
    return pa.schema(
        [
            ("session", pa.int64()),
            ("user", pa.int32()),
            ("subject", pa.string()),
            ("sequence", pa.int32()),
            ("session_index", pa.int32()),
            ("split", pa.string()),
            ("label", pa.int32()),
            ("n_frames", pa.int32()),
            ("realtime", pa.list_(pa.uint8(), frame_bytes)),
        ]
    )


def image_frames_schema(frame_bytes: int) -> pa.Schema:
    """``train.parquet``/``test.parquet`` for images: one row per frame, pixels uint8 (C, H, W)."""
    return pa.schema(
        [
            ("user", pa.int32()),
            ("session", pa.int64()),
            ("position", pa.int32()),
            ("label", pa.int32()),
            ("pixels", pa.list_(pa.uint8(), frame_bytes)),
            ("source", pa.string()),
        ]
    )


@dataclass
class ImageTables:
    """The tables of a prepared image dataset plus the counts that go into ``meta.json``."""

    sessions: pa.Table
    train: pa.Table
    val: pa.Table
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


def _fixed_bytes(
    column: pl.Series, plane_bytes: int, channels: int, path: str
) -> pa.FixedSizeListArray:
    """Binary gray pixel column -> fixed-size uint8 list of ``channels`` copies of each
    plane, (C, H, W) order (Ray Data reads it as a (B, CHW) tensor)."""
    flat = np.frombuffer(b"".join(column.to_list()), dtype=np.uint8)
    if flat.size != plane_bytes * len(column):
        raise DataError(path, f"frames are not all {plane_bytes} bytes")
    planes = flat.reshape(len(column), 1, plane_bytes)
    flat = np.broadcast_to(planes, (len(column), channels, plane_bytes)).ravel()
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), channels * plane_bytes)


def build_image_tables(
    frames: pl.DataFrame,
    plane_bytes: int,
    options: SessionOptions,
    channels: int = 1,
    seed: int = 0,
) -> ImageTables:
    """Split videos by time per subject (or by subject into folds) and build the session
    and frame tables.

    Args:
        frames (pl.DataFrame): :data:`pipelines.ckplus.FRAMES_SCHEMA` rows (gray planes).
        plane_bytes (int): H*W of every frame.
        options (SessionOptions): ``test_sessions`` / ``val_sessions`` for the time split
            (see assign_split), or ``folds`` / ``fold`` for subject-independent folds
            (pipelines/folds.py).
        channels (int): copies of the gray plane per frame: 3 is the paper's RGB-shaped
            input (Table 5, 224x224x3), 1 keeps gray.
        seed (int): shuffles the subjects of the folds.
    """
    frame_bytes = channels * plane_bytes
    df = _split_frames(frames, options, seed)
    table = _session_table(df, plane_bytes, channels)
    splits = {
        split: _frame_table(df.filter(pl.col("split") == split), plane_bytes, channels, split)
        for split in SPLITS
    }
    counts = {
        "users": int(df["user"].max()) + 1,
        "sessions": table.num_rows,
        "frames": df.height,
        **split_counts(table["split"], splits),
    }
    return ImageTables(
        table.cast(image_sessions_schema(frame_bytes)),
        splits["train"],
        splits["val"],
        splits["test"],
        counts,
    )


def _split_frames(frames: pl.DataFrame, options: SessionOptions, seed: int) -> pl.DataFrame:
    """Every frame with its ``user``, ``session``, ``session_index`` and ``split``: the time
    split per subject, or with ``options.folds`` the fold of its subject.

    Why the time split runs even with folds: it also numbers the sessions (assign_split);
    the fold split then only replaces the ``split`` column.
    """
    df = assign_split(
        index_sessions(frames.lazy()), options.test_sessions, options.val_sessions
    ).collect()
    if options.folds:
        videos = df.group_by("subject", "sequence").agg(pl.col("label").max())
        owner = subject_folds(videos, options.folds, seed)
        split = fold_split(pl.col("subject"), owner, options.folds, options.fold)
        df = df.with_columns(split=split)
    return df


def _session_table(df: pl.DataFrame, plane_bytes: int, channels: int) -> pa.Table:
    """One row per video, labelled by its peak frame, with its first frame as the real-time
    input the PPG reads (not yet cast to :func:`image_sessions_schema`)."""
    sessions = df.group_by("session", maintain_order=True).agg(
        pl.col("user", "subject", "sequence", "session_index", "split").first(),
        label=pl.col("label").max(),
        n_frames=pl.len().cast(pl.Int32),
        realtime=pl.col("pixels").first(),
    )
    return (
        sessions.drop("realtime")
        .to_arrow()
        .append_column(
            "realtime", _fixed_bytes(sessions["realtime"], plane_bytes, channels, "<sessions>")
        )
    )


def _frame_table(part: pl.DataFrame, plane_bytes: int, channels: int, split: str) -> pa.Table:
    """One split's frames as :func:`image_frames_schema` rows; the pixels go through
    :func:`_fixed_bytes` so that every frame is checked to be ``plane_bytes`` long."""
    cols = part.select("user", "session", "position", "label").to_arrow()
    cols = cols.append_column("pixels", _fixed_bytes(part["pixels"], plane_bytes, channels, split))
    cols = cols.append_column("source", part["source"].to_arrow())
    return cols.cast(image_frames_schema(channels * plane_bytes))
