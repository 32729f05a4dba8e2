"""Load a prepared directory's split into the tensor dataclasses of :mod:`duet.data`.

Parquet stores one row per click positive with its negatives inline (compact: the history
is stored once per group); here each positive expands to ``1 + k`` scored rows, the
positive first, all sharing one ``group``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipelines.errors import DataError
from pipelines.names import SPLITS


def load_meta(prepared_dir: str | Path) -> dict:
    """``meta.json`` of a prepared directory.

    Raises:
        DataError: missing or unreadable file, or a schema version this code does not know.
    """
    from pipelines.prepare import SCHEMA_VERSION

    path = Path(prepared_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read prepared metadata ({exc})") from exc
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            path,
            f"schema_version {meta.get('schema_version')!r}, "
            f"this code reads {SCHEMA_VERSION}; prepare the data again",
        )
    return meta


def verify_prepared(prepared_dir: str | Path) -> dict:
    """``meta.json``, after checking every Parquet file against the SHA-256 it records.

    A run reads the prepared files in many processes (fleet actors, the generator); checking
    once up front turns a truncated or edited file into one error naming it, before any of
    them start, instead of a crashed actor with the reason buried in its traceback.

    Raises:
        DataError: unreadable ``meta.json``, or a file missing or not as prepared.
    """
    from pipelines.prepare import sha256

    meta = load_meta(prepared_dir)
    for name, digest in meta.get("files", {}).items():
        path = Path(prepared_dir) / name
        if not path.is_file():
            raise DataError(path, "missing (listed in meta.json); prepare the data again")
        if sha256(path) != digest:
            raise DataError(
                path,
                "SHA-256 differs from meta.json: the file was truncated or "
                "changed after `duet-sim data prepare`; prepare the data again",
            )
    return meta


def read_table(path: str | Path, columns: list[str] | None = None, filters: Any = None) -> pa.Table:
    """Read one Parquet file (``filters``: a pyarrow expression, pushed down); a missing or
    truncated file becomes a DataError naming it."""
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(path, f"cannot read Parquet ({exc})") from exc


def fixed_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Fixed-size list column -> (rows, width) numpy array, no per-row Python."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.list_size
    return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def load_samples(prepared_dir: str | Path, split: str, users: int | None = None):
    """Load ``split`` of a prepared directory as ``ClickSamples`` or ``ImageSamples``.

    Args:
        prepared_dir (str | Path): output of :func:`pipelines.prepare.prepare`.
        split (str): one of :data:`pipelines.names.SPLITS` (``"train"``, ``"val"``, ``"test"``).
        users (int | None): only the rows of users 0..users-1 (a filter pushed down to the
            Parquet row groups). Default: every user.

    Returns:
        ClickSamples | ImageSamples: ``session`` indexes ``realtime``, which holds every
        session of the dataset (train and test), one row per ``sessions.parquet`` row.

    Raises:
        ValueError: unknown split.
        DataError: missing or corrupt files.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    prepared_dir = Path(prepared_dir)
    meta = load_meta(prepared_dir)
    cut = None if users is None else pads.field("user") < users
    table = read_table(prepared_dir / f"{split}.parquet", filters=cut)
    return samples_from_table(table, load_realtime(prepared_dir, meta), meta)


def load_realtime(prepared_dir: str | Path, meta: dict):
    """Every session's real-time window, the tensor ``Samples.realtime`` indexes by session:
    (S, R) item ids, or (S, C, H, W) frames in [0, 1]."""
    import torch

    flat = fixed_to_numpy(
        read_table(Path(prepared_dir) / "sessions.parquet", ["realtime"])["realtime"]
    )
    if meta["kind"] == "clicks":
        return torch.from_numpy(flat.astype(np.int64))
    return _pixels(flat, meta)


def samples_from_table(table: pa.Table, realtime, meta: dict):
    """Rows of a split's Parquet (all of it, or a streamed batch) as ``ClickSamples`` or
    ``ImageSamples``; ``realtime`` from :func:`load_realtime`, shared, not copied."""
    if meta["kind"] == "clicks":
        return _clicks(table, realtime)
    return _images(table, realtime, meta)


def _pixels(flat: np.ndarray, meta: dict):
    import torch

    shape = (meta["channels"], meta["height"], meta["width"])
    return torch.from_numpy(flat.reshape(-1, *shape).astype(np.float32) / 255.0)


def _clicks(table: pa.Table, realtime):
    import torch

    from duet.data import ClickSamples

    negatives = fixed_to_numpy(table["negatives"])  # (P, k)
    n_pos, k = negatives.shape
    per_pos = k + 1
    target = np.concatenate([table["target"].to_numpy()[:, None], negatives], axis=1)
    label = np.zeros((n_pos, per_pos), dtype=np.float32)
    label[:, 0] = 1.0

    def rep(name: str) -> torch.Tensor:
        return torch.from_numpy(np.repeat(table[name].to_numpy().astype(np.int64), per_pos))

    positive = torch.from_numpy(np.repeat(np.arange(n_pos, dtype=np.int64), per_pos))
    return ClickSamples(
        # one history per positive, shared with its negatives (ClickSamples.history_of)
        history=torch.from_numpy(fixed_to_numpy(table["history"]).astype(np.int64)),  # (P, L)
        history_of=positive,  # (B,)
        target=torch.from_numpy(target.reshape(-1).astype(np.int64)),  # (B,)
        label=torch.from_numpy(label.reshape(-1)),
        session=rep("session"),
        user=rep("user"),
        group=positive,
        position=rep("position"),
        realtime=realtime,  # (S, R)
    )


def _images(table: pa.Table, realtime, meta: dict):
    import torch

    from duet.data import ImageSamples

    def col(name: str) -> torch.Tensor:
        return torch.from_numpy(table[name].to_numpy().astype(np.int64))

    return ImageSamples(
        pixels=_pixels(fixed_to_numpy(table["pixels"]), meta),  # (B, C, H, W)
        label=col("label"),
        session=col("session"),
        user=col("user"),
        position=col("position"),
        realtime=realtime,  # (S, C, H, W)
    )


def load_seen(prepared_dir: str | Path):
    """Every user's interacted items (all splits) in CSR form, for full-ranking metrics:
    ``(ptr (U + 1,), items (nnz,))`` as torch tensors, user u's sorted items being
    ``items[ptr[u]:ptr[u + 1]]``.

    Raises:
        DataError: missing or corrupt ``sessions.parquet``.
    """
    import torch

    table = read_table(Path(prepared_dir) / "sessions.parquet", ["user", "items"])
    users = np.repeat(table["user"].to_numpy(), pa.compute.list_value_length(table["items"]))
    items = pa.compute.list_flatten(table["items"]).to_numpy()
    keys = np.unique(users.astype(np.int64) << 32 | items.astype(np.int64))
    users, items = keys >> 32, keys & 0xFFFFFFFF
    ptr = np.zeros(int(table["user"].to_numpy().max()) + 2, dtype=np.int64)
    np.add.at(ptr, users + 1, 1)
    return torch.from_numpy(np.cumsum(ptr)), torch.from_numpy(items)
