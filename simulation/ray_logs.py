"""Keep Ray's and Serve's own output out of the terminal of `duet-sim run`.

A run prints our progress bar, our one-line warnings and our summary. Ray adds INFO lines
on start (its Python loggers, which it re-attaches to ``sys.stderr`` in `ray.init`), Serve
controller logs and raylet task warnings forwarded from other processes (printed to
``sys.stdout``), and C++ core-worker messages written straight to the process's file
descriptors at shutdown. Unless ``--verbose``, the process's stdout and stderr descriptors
point at one log file in the run directory while Ray runs, so every one of those lands
there, whatever stream object wrote it; our own output goes to ``console``, a stream on
the terminal the descriptors pointed at before.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOG_NAME = "ray.log"


@contextlib.contextmanager
def ray_output_to(path: Path, verbose: bool = False) -> Iterator[TextIO]:
    """Within the block, file descriptors 1 and 2 write to ``path`` (unless ``verbose``);
    yields the stream our own output goes to (the terminal's stdout either way)."""
    if verbose:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(saved[1]), "w", buffering=1)
    with path.open("a") as log:
        for fd in saved:
            os.dup2(log.fileno(), fd)
    try:
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in saved.items():
            os.dup2(original, fd)
            os.close(original)
        console.close()
