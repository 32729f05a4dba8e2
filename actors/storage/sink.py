"""Session rows on disk: a sink that flushes a fleet's finished sessions (actors/storage/rows.py) as
small Parquet part files, each appearing whole or not at all: written to a hidden temp name
and renamed on a local disk; on an object store (``s3://``, actors/storage/uris.py) written
straight to its key, since an object becomes visible only once its upload completes.

Layout: ``OUT/sessions/fleet=K/part-00000.parquet``, one Hive-partitioned dataset:
``pq.read_table(OUT/sessions)`` or ``pl.read_parquet(OUT/sessions)`` reads every part
(adding a ``fleet`` column). Readers skip the temp files (names start with ``.``).

Row identity is (run_id, device_id, session_index, method). The rows of one session are
always in one part file, so after a crash a session is either fully on disk or not at
all; a restarted fleet skips the keys already flushed (`flushed_sessions`) and never
writes a row twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from actors.storage.rows import ROW_SCHEMA, SessionRow, rows_table
from actors.storage.uris import filesystem, join

log = logging.getLogger(__name__)

KEY_COLUMNS = ["device_id", "session_index"]
PART_PREFIX = "part-"


@dataclass(frozen=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))
class FlushPolicy:
    """When a fleet writes its waiting rows: a crash loses at most this much."""

    flush_rows: Annotated[int, Field(gt=0)] = Field(
        2000, description="rows per Parquet part file at most: written once this many wait"
    )
    flush_interval_s: Annotated[float, Field(gt=0)] = Field(
        2.0, description="and at least this often, once the oldest waiting row is this old"
    )


def fleet_dir(sessions_dir: str | Path, fleet: int) -> str:
    return join(sessions_dir, f"fleet={fleet}")


class PartSink:
    """Buffers a fleet's rows and writes them as atomic part files.

    Args:
        directory (str | Path): this fleet's folder (``OUT/sessions/fleet=K``), a path or a
            URI.
        flush (FlushPolicy): when waiting rows are written. Default: ``FlushPolicy()``.
        on_rows (Iterable[Callable[[pa.Table], None]]): called with every written part,
            after it is on disk (e.g. a metrics exporter); a hook that raises is logged and
            does not stop the fleet.
    """

    def __init__(
        self,
        directory: str | Path,
        flush: FlushPolicy | None = None,
        on_rows: Iterable[Callable[[pa.Table], None]] = (),
    ):
        flush = flush or FlushPolicy()
        self.fs, self.directory = filesystem(directory)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.fs.create_dir(self.directory, recursive=True)
        for stale in self._names():  # a crash between write and rename
            if stale.startswith(".") and stale.endswith(".tmp"):
                self.fs.delete_file(f"{self.directory}/{stale}")
        self.flush_rows, self.flush_interval_s = flush.flush_rows, flush.flush_interval_s
        self.on_rows = list(on_rows)
        self._rows: list[SessionRow] = []
        self._oldest = 0.0
        self._next_part = 1 + max((_part_number(p) for p in self._parts()), default=-1)
        self.rows_written = 0

    def _names(self) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.directory, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def _parts(self) -> list[str]:
        return [n for n in self._names() if _is_part(n)]

    def add(self, rows: list[SessionRow]) -> None:
        """Queue one session's rows (kept together in one part); flush when due."""
        if not self._rows:
            self._oldest = time.monotonic()
        self._rows.extend(rows)
        if len(self._rows) >= self.flush_rows or self.due():
            self.flush()

    def due(self) -> bool:
        return bool(self._rows) and time.monotonic() - self._oldest >= self.flush_interval_s

    def flush(self) -> None:
        """Write every waiting row as the next part file (temp name, then rename)."""
        if not self._rows:
            return
        table = rows_table(self._rows)
        name = f"{self.directory}/{PART_PREFIX}{self._next_part:05d}.parquet"
        if self.local:
            tmp = f"{self.directory}/.{name.rsplit('/', 1)[1]}.tmp"
            pq.write_table(table, tmp, compression="zstd", filesystem=self.fs)
            self.fs.move(tmp, name)  # a rename: atomic on one file system
        else:  # one object upload: visible whole once it completes, never in part
            pq.write_table(table, name, compression="zstd", filesystem=self.fs)
        self._next_part += 1
        self._rows = []
        self.rows_written += table.num_rows
        for hook in self.on_rows:
            try:
                hook(table)
            except Exception:  # an observer must not lose the simulation its rows
                log.exception("on_rows hook %r failed", hook)


def _is_part(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(".parquet")


def _part_number(name: str) -> int:
    return int(name.removeprefix(PART_PREFIX).removesuffix(".parquet"))


def has_parts(sessions_dir: str | Path) -> bool:
    """Whether any fleet has flushed a part under ``sessions_dir`` (a path or a URI)."""
    fs, path = filesystem(sessions_dir)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return any(_is_part(i.base_name) and "/fleet=" in i.path for i in infos)


def read_sessions(sessions_dir: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Every flushed row of a run, from a path or a URI (empty table with the schema when
    there is none)."""
    if not has_parts(sessions_dir):
        schema = (
            ROW_SCHEMA if columns is None else pa.schema([ROW_SCHEMA.field(c) for c in columns])
        )
        return schema.empty_table()
    fs, path = filesystem(sessions_dir)
    return pq.read_table(path, columns=columns, partitioning="hive", filesystem=fs)


def flushed_sessions(sessions_dir: str | Path, devices: Iterable[int]) -> set[tuple[int, int]]:
    """(device_id, session_index) keys of ``devices`` already on disk, in any fleet folder
    (so a resume may change how devices are spread over fleets)."""
    table = read_sessions(sessions_dir, KEY_COLUMNS)
    wanted = set(devices)
    keys = zip(table["device_id"].to_pylist(), table["session_index"].to_pylist(), strict=True)
    return {(d, s) for d, s in keys if d in wanted}
