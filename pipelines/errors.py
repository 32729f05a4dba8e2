"""The one exception type for bad input data."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Raw or prepared data cannot be read; the message names the file (and line when known).

    The CLI prints it as one line (``duet-sim data prepare: error: ...``) and exits 1.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
