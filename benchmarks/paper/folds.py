"""Tables 2 and 4 as CK+'s subject-independent cross-validation, as facial-expression work
reports it: per test fold of :data:`~benchmarks.paper.cells.FOLDS`, one seed of each cell,
and the ridge floor on the same split."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from benchmarks.paper.cells import Cell, ridge_path, write_json
from benchmarks.paper.floor import ridge_floor
from benchmarks.paper.grids import EPOCHS, grid, prepared, run_cells


def fold_cells(
    fold: int,
    backbones: Sequence[str],
    methods: Sequence[str],
    n_ps: Sequence[int],
    protocol: str,
) -> list[Cell]:
    """Table 2's cells of seed 0 with ``fold`` as their test fold."""
    table2 = grid("table2", "ckplus", backbones, methods, (0,), n_ps, protocol)
    return [dataclasses.replace(cell, table="folds", fold=fold) for cell in table2]


def run_folds(
    folds: Sequence[int],
    backbones: Sequence[str],
    methods: Sequence[str],
    n_ps: Sequence[int],
    protocol: str,
    ridge: bool,
    data_dir: Path | None,
    results: Path,
    runs: Path,
) -> None:
    """Train each fold's cells with Table 2's epochs and, with ``ridge``, fit its floor."""
    for fold in folds:
        data = prepared("ckplus", data_dir, runs, protocol, fold)
        cells = fold_cells(fold, backbones, methods, n_ps, protocol)
        run_cells(cells, EPOCHS["table2"], data, results, runs)
        floor = ridge_path(results, "folds", cells[0].folder, fold)
        if ridge and not floor.is_file():
            write_json(floor, ridge_floor(data))
