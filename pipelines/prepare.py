"""``duet-sim data prepare``: raw dataset -> a prepared directory, written atomically.

A prepared directory holds ``sessions.parquet``, ``train.parquet``, ``val.parquet``,
``test.parquet``, ``meta.json`` and, for clicks, ``items.parquet`` (schemas in docs/data.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.datasets import DATASETS, ClickDataset, Dataset
from pipelines.errors import DataError
from pipelines.names import SPLITS, ImageInput
from pipelines.sessions import SessionOptions

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: a validation split (val.parquet) and image channels
DATA_DIR_ENV = "DUET_DATA_DIR"


def default_options(dataset: str) -> SessionOptions:
    """The protocol a dataset is prepared with unless the caller overrides it: the paper's,
    with the dataset's own differences (`Dataset.options`)."""
    return SessionOptions(**DATASETS[dataset].options)


def resolve_source(dataset: Dataset, data_dir: str | Path | None) -> Path | None:
    """Find the raw folder: ``data_dir/<known sub-folder>``, else ``data_dir`` itself.

    ``data_dir`` defaults to ``$DUET_DATA_DIR``. Generated datasets need no folder (None).

    Raises:
        DataError: no data dir given or the folder does not exist.
    """
    if not dataset.folders:
        return None
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise DataError("--data-dir", f"not given and ${DATA_DIR_ENV} is unset")
    root = Path(data_dir)
    for folder in dataset.folders:
        if (root / folder).is_dir():
            return root / folder
    if root.is_dir():
        return root
    raise DataError(root, "directory not found")


def prepare(
    dataset: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    options: SessionOptions | None = None,
    seed: int = 0,
    image: ImageInput | None = None,
    knobs: Any = None,
) -> dict:
    """Prepare ``dataset`` into ``out``; on any failure ``out`` is left as it was.

    Args:
        dataset (str): a registered dataset (pipelines/datasets.py).
        out (str | Path): the prepared directory to (re)create.
        data_dir (str | Path | None): raw data root. Default: ``$DUET_DATA_DIR``.
        options (SessionOptions | None): protocol knobs (clicks use all of them, images
            the split). Default: :func:`default_options`.
        seed (int): seeds negatives, folds and generated data; same seed, byte-identical
            Parquet.
        image (ImageInput | None): the frames of an image dataset (ignored for clicks).
            Default: ``ImageInput()``, CK+48's 48x48 gray.
        knobs (Any): a generated dataset's knobs (`Dataset.knobs`). Default: its defaults.

    Returns:
        dict: the ``meta.json`` content.

    Raises:
        RegistryError: an unknown dataset, before anything is read.
        DataError: bad or missing input, naming the file.
    """
    source_of = DATASETS[dataset]()
    image = image or ImageInput()
    options = options or default_options(dataset)
    knob_class = source_of.knobs()
    knobs = knobs if knobs is not None else knob_class() if knob_class else None
    source = resolve_source(source_of, data_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if isinstance(source_of, ClickDataset):
            read = source_of.read(source, knobs, seed, image.image_size)
            tables = _prepare_clicks(read, tmp, options, seed)
        else:
            tables = _prepare_images(source_of, source, knobs, tmp, options, seed, image)
        meta = _meta(dataset, seed, source, options, knobs, tables, tmp)
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s into %s: %s", dataset, out, meta["counts"])
    return meta


def _meta(dataset, seed, source, options, knobs, tables: dict, tmp: Path) -> dict:
    """``meta.json`` of the prepared files in ``tmp``, written there: what was prepared, how,
    from where, the tables' facts and each file's hash."""
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "seed": seed,
        "source": str(source) if source else None,
        "options": dataclasses.asdict(options),
        **tables,
        "synthetic": dataclasses.asdict(knobs) if knobs is not None else None,
        "files": {p.name: sha256(p) for p in sorted(tmp.glob("*.parquet"))},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def _prepare_clicks(read, tmp: Path, options: SessionOptions, seed: int) -> dict:
    from pipelines.clicks import ClickParts

    if options.folds:
        raise ValueError("folds: subject folds are for image datasets; clicks split by time")
    chunks, items = read
    parts = ClickParts(chunks, items, options, seed)
    names = ("sessions", *SPLITS)
    with ParquetParts({n: tmp / f"{n}.parquet" for n in names}) as out:
        for part in parts:
            out.write("sessions", part.sessions)
            for split, table in part.splits.items():
                out.write(split, table)
    assert parts.items is not None  # every chunk was read
    write_parquet(parts.items, tmp / "items.parquet")
    genres = sorted({g for gs in parts.items["genres"].to_pylist() for g in gs})
    return {
        "kind": "clicks",
        "counts": parts.counts,
        "num_users": parts.counts["users"],
        "num_items": parts.counts["items"],
        "history_length": options.history_length,
        "realtime_size": options.realtime_size,
        "genres": genres,
    }


def _prepare_images(source_of, source, knobs, tmp, options, seed, image: ImageInput) -> dict:
    from pipelines.images import build_image_tables

    frames, class_names, size = source_of.read(source, knobs, seed, image.image_size)
    tables = build_image_tables(frames, size * size, options, image.image_channels, seed)
    for name in ("sessions", *SPLITS):
        write_parquet(getattr(tables, name), tmp / f"{name}.parquet")
    return {
        "kind": "images",
        "counts": tables.counts,
        "num_users": tables.counts["users"],
        "height": size,
        "width": size,
        "channels": image.image_channels,
        "num_classes": len(class_names),
        "class_names": class_names,
    }


PARQUET_OPTIONS = {"compression": "zstd"}  # a fixed codec and no timestamps: bytes = data
ROW_GROUP_ROWS = 1 << 20


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic Parquet, so bytes depend on data only."""
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)


class ParquetParts:
    """Several Parquet files written a part at a time, each opened at its first part: one
    part gives the bytes of `write_parquet`."""

    def __init__(self, paths: dict[str, Path]):
        self.paths, self._writers = paths, {}

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(
                self.paths[name], table.schema, **PARQUET_OPTIONS
            )
        self._writers[name].write_table(table, row_group_size=ROW_GROUP_ROWS)

    def __enter__(self) -> ParquetParts:
        return self

    def __exit__(self, *exc) -> None:
        for writer in self._writers.values():
            writer.close()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace_dir(src: Path, dst: Path) -> None:
    """Swap ``src`` in as ``dst`` with renames only, so readers see the old or the new tree."""
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
