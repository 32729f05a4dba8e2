"""Where a scenario may point: local paths and object-store locations, confined to the roots
the operator configured.

``data.prepared``, ``model.checkpoints`` and ``output.dir`` may be object-store URIs
(``s3://bucket/prefix``, actors/storage/uris.py: the bucket must exist, credentials come from
the environment, never from the file). Local paths in a scenario (those, and
``data.data_dir``) are resolved against the current working directory, which is the repository
root for ``make`` and the uploaded working dir for ``ray job submit --working-dir .``. Relative
or absolute, a path must resolve (symlinks followed) inside one of the roots the operator
configured (`path_roots`): a scenario file can name data, but cannot make a run read or
write anywhere else. Input folders must exist, so a typo fails validation, not a run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from actors.storage.uris import check_uri, is_uri

ROOTS_ENV = "DUET_SIM_ROOTS"  # extra folders scenario paths may point into, os.pathsep-separated


def path_roots() -> list[Path]:
    """Folders a scenario's paths may resolve into: the working directory (where relative paths
    start), ``$DUET_DATA_DIR`` and each folder of ``$DUET_SIM_ROOTS``. They come from the
    operator's environment, never from the scenario, which is the input being confined."""
    from pipelines.prepare import DATA_DIR_ENV

    extra = [os.environ.get(DATA_DIR_ENV, ""), *os.environ.get(ROOTS_ENV, "").split(os.pathsep)]
    return [Path.cwd().resolve(), *(Path(p).resolve() for p in extra if p)]


def resolve_path(value: str | Path, roots: Sequence[Path] | None = None) -> Path:
    """A scenario path made absolute: relative ones start at the first root (default: the
    working directory). ``..`` and symlinks are resolved before the check.

    Raises:
        ValueError: the path resolves outside every root.
    """
    roots = path_roots() if roots is None else [Path(r).resolve() for r in roots]
    resolved = (roots[0] / value).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ValueError(
            f"{str(value)!r} resolves to {resolved}, outside the allowed roots "
            f"{[str(r) for r in roots]}; add a root with ${ROOTS_ENV}"
        )
    return resolved


def _rooted(value: Path) -> Path:
    resolve_path(value)
    return value


def _existing_dir(value: Path) -> Path:
    if not resolve_path(value).is_dir():
        raise ValueError(f"directory {str(value)!r} not found")
    return value


def _input_location(value: str) -> str:
    if is_uri(value):
        return check_uri(value, must_exist=True)
    _existing_dir(Path(value))
    return value


def _output_location(value: str) -> str:
    if is_uri(value):
        return check_uri(value, must_exist=False)
    _rooted(Path(value))
    return value


RootedPath = Annotated[Path, AfterValidator(_rooted)]  # may not exist yet (outputs)
InputDir = Annotated[Path, AfterValidator(_existing_dir)]  # must exist (raw data)
# a local folder or an object-store URI (actors/storage/uris.py): inputs must exist, an
# output's bucket must; local ones stay inside the operator's roots
InputLocation = Annotated[str, AfterValidator(_input_location)]
OutputLocation = Annotated[str, AfterValidator(_output_location)]
