"""One training cell, its name and folder, and the cache of finished cells.

A finished cell's metrics are cached as
``benchmarks/paper_results/<table>/<folder>/<name>.json``: small and committed, so progress
survives between sessions and rerunning a grid skips what is cached. The grids write these
names and the docs' tables read them back, so the format is written here once: a cell
renamed on one side only would read as pending on the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "paper_results"
RUNS = ROOT / "runs" / "paper"
FOLDS = 10  # CK+'s subject-independent cross-validation, as facial-expression work reports it
RIDGE = "linear-ridge"  # the linear floor's JSON, beside the cells of the data it was fitted on


def variant_name(method: str, np: int | None = None, tag: str = "") -> str:
    """The method column: ``duet`` cells of the N_p sweep carry their N_p (``duet-np3``),
    variant cells their tag (``duet-history``, ``base-ours``)."""
    variant = method if np is None else f"{method}-np{np}"
    return f"{variant}-{tag}" if tag else variant


def cell_name(backbone: str, variant: str, seed: int = 0, fold: int | None = None) -> str:
    """``{backbone}-{variant}-s{seed}``, or ``-f{fold}`` for a cross-validation cell: the
    stem of the cell's cached JSON and the name of its run directory."""
    run = f"s{seed}" if fold is None else f"f{fold}"
    return f"{backbone}-{variant}-{run}"


def data_folder(dataset: str, protocol: str = "") -> str:
    """``movielens-100k``, ``ckplus-112x3``: a dataset prepared with a
    ``pipelines.names.PROTOCOLS`` entry ("" = the dataset's default), which names both the
    folder of its cells and that of its prepared data."""
    return f"{dataset}-{protocol}" if protocol else dataset


@dataclass(frozen=True)
class Cell:
    """One training run; ``np`` is N_p for duet cells of the N_p sweep, else None."""

    table: str
    dataset: str
    backbone: str
    method: str
    seed: int
    np: int | None = None
    tag: str = ""  # parity and variant cells: what differs from the cell of the same name
    options: tuple[tuple[str, Any], ...] = ()  # train options behind ``tag``
    protocol: str = ""  # a PROTOCOLS entry the data was prepared with ("" = the default)
    fold: int | None = None  # cross-validation cells: the test fold of FOLDS (else None)

    @property
    def variant(self) -> str:
        return variant_name(self.method, self.np, self.tag)

    @property
    def name(self) -> str:
        return cell_name(self.backbone, self.variant, self.seed, self.fold)

    @property
    def folder(self) -> str:
        """Cells of one (dataset, protocol) share a folder: ``ckplus-112x3``, and
        ``ckplus-112x3-folds10`` for the cross-validation cells."""
        folder = data_folder(self.dataset, self.protocol)
        return folder if self.fold is None else f"{folder}-folds{FOLDS}"

    def cached(self, results: Path) -> Path:
        return results / self.table / self.folder / f"{self.name}.json"

    def run_dir(self, runs: Path) -> Path:
        return runs / self.table / self.folder / self.name


def ridge_path(results: Path, table: str, folder: str, fold: int | None = None) -> Path:
    """The linear floor fitted on one folder's data; one per test fold for the
    cross-validation folders (``linear-ridge-f{fold}``)."""
    name = RIDGE if fold is None else f"{RIDGE}-f{fold}"
    return results / table / folder / f"{name}.json"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """A cached result as committed: sorted keys, indented, so reruns diff line by line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """A cached result, or None where it has not been computed yet."""
    return json.loads(path.read_text()) if path.is_file() else None


def load_cells(results: Path, table: str, folder: str) -> dict[str, dict[str, Any]]:
    """Cached cells of one table in one (dataset, protocol) folder, by cell name."""
    files = sorted((results / table / folder).glob("*.json"))
    return {p.stem: json.loads(p.read_text()) for p in files if not p.stem.startswith(RIDGE)}


def seeds_of(
    cells: dict[str, dict[str, Any]], backbone: str, variant: str, seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """The cached cells of one (backbone, variant) among ``seeds``, in seed order."""
    names = (cell_name(backbone, variant, s) for s in seeds)
    return [cells[name] for name in names if name in cells]


def repo_relative(path: Path) -> str:
    """``path`` as the docs and cached cells write it: relative to the repository when it is
    inside (no machine's absolute paths in committed files), else as given."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def portable(value: Any) -> Any:
    """A cell's metrics with every path string inside the repository made relative to it
    (the recipe records the absolute paths it was given: ``prepared``, ``base_run``)."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return repo_relative(Path(value))
    return value
