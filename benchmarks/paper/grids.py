"""The training grids of Tables 1, 2 and 4, and how one cell is trained and cached.

Every training cell is one run of ``simulation.train_recipe.TrainRecipe``, the recipe
`duet-sim train` calls, on a dataset prepared once per (dataset, protocol) and shared by all
cells (``--prepared``). Checkpoints stay under ``runs/paper/`` (git-ignored); each finished
cell's metrics are cached (:mod:`benchmarks.paper.cells`), and a cached cell is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import (
    FOLDS,
    Cell,
    data_folder,
    portable,
    repo_relative,
    variant_name,
    write_json,
)
from duet.method import METHODS
from pipelines.datasets import DATASETS
from pipelines.names import PROTOCOLS, ImageInput

SEEDS = (0, 1, 2, 3, 4)
# table1: 2 epochs, chosen from one measured epoch per backbone on this 2-core machine
# (ML-100K ~45-72 s per epoch + ~30 s evaluation; docs/results.md); table2: the recipe's
# image default, chosen on validation.
EPOCHS = {"table1": 2, "table2": 40}  # table2: the most; the best on validation is kept
CLICK_BACKBONES = ("din", "sasrec", "gru4rec")
# Table 1's rows: variant -> (method, tag, train options). The -history rows condition the
# generator on each impression's own history (the authors' code), the others on the
# session's real-time clicks (the paper's text); finetune-user is the authors' fine-tuning.
HISTORY = (("condition", "history"),)
TABLE1_VARIANTS: dict[str, tuple[str, str, tuple[tuple[str, Any], ...]]] = {
    "base": ("base", "", ()),
    "duet": ("duet", "", ()),
    "duet-no-swa": ("duet-no-swa", "", ()),
    "duet-history": ("duet", "history", HISTORY),
    "duet-no-swa-history": ("duet-no-swa", "history", HISTORY),
    "hypernet": ("hypernet", "", ()),
    "finetune": ("finetune", "", ()),
    "finetune-user": ("finetune-user", "", ()),
}
CLICK_METHODS = tuple(TABLE1_VARIANTS)
IMAGE_BACKBONES = ("mobilenet_v3_large", "mobilenet_v3_small")
IMAGE_METHODS = ("base", "duet-no-swa", "duet")
NP_SWEEP = (2, 3, 5)  # Table 4
TABLE2_NP = 5  # Table 2's DUET row is the N_p = 5 cell of Table 4's sweep
TABLE2_DUET = variant_name("duet", TABLE2_NP)
CLICK_PROTOCOLS = ("h10-r30", "paper-ml100k")  # pipelines.names.PROTOCOLS
IMAGE_PROTOCOLS = ("48x1", "112x3", "224x3")
TABLE2_PROTOCOL = "112x3"  # the 5-seed grid; docs/results.md says why not 224x3


def grid(
    table: str,
    dataset: str,
    backbones: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    n_ps: Sequence[int] = NP_SWEEP,
    protocol: str = "",
) -> list[Cell]:
    """Cells in the order that informs first: seed 0 of every (backbone, method), then the
    next seed, and so on, so a run cut short still holds complete seed-0 rows. ``n_ps``
    narrows Table 2's DUET cells to part of the N_p sweep, so Table 2's own DUET cell
    (N_p = 5) can be run over all seeds before the rest of Table 4."""
    cells = []
    for seed in seeds:
        for backbone in backbones:
            for name in methods:
                method, tag, options = TABLE1_VARIANTS.get(name, (name, "", ()))
                if table == "table2":
                    tag, options = "", ()
                nps = n_ps if table == "table2" and method == "duet" else (None,)
                cells += [
                    Cell(table, dataset, backbone, method, seed, n, tag, options, protocol)
                    for n in nps
                ]
    return cells


def table_cells(
    table: str,
    dataset: str,
    backbones: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    n_ps: Sequence[int],
    protocol: str,
) -> list[Cell]:
    """The cells of Table 1 or 2 as the tables report them: :func:`grid`, and Table 1's
    cells score sampled and full-ranking metrics (Krichene and Rendle 2020)."""
    cells = grid(table, dataset, backbones, methods, seeds, n_ps, protocol)
    if table == "table1":
        cells = [
            dataclasses.replace(c, options=c.options + (("full_ranking", True),)) for c in cells
        ]
    return cells


def prepared(
    dataset: str, data_dir: Path | None, runs: Path, protocol: str = "", fold: int | None = None
) -> Path:
    """Prepare ``dataset`` once under ``runs/data`` (every cell of a table reuses it);
    ``protocol`` names a :data:`PROTOCOLS` entry other than the dataset's default, ``fold``
    a test fold of the subject-independent :data:`FOLDS`-fold split."""
    from pipelines.prepare import default_options, prepare

    name = data_folder(dataset, protocol)
    out = runs / "data" / (name if fold is None else f"{name}-fold{fold}of{FOLDS}")
    if not (out / "meta.json").is_file():
        spec = PROTOCOLS[protocol] if protocol else {}
        split = {} if fold is None else {"folds": FOLDS, "fold": fold}
        options = dataclasses.replace(default_options(dataset), **spec.get("options", {}), **split)
        image = ImageInput(**spec.get("image", {}))
        prepare(dataset, out, data_dir=data_dir, options=options, image=image)
    return out


def train_command(cell: Cell, epochs: int, data: Path, test: bool = True) -> str:
    """The equivalent `duet-sim train` command line, stored with the cell for the docs."""
    np_flag = f" --np {cell.np}" if cell.np is not None else ""
    options = dict(cell.options)
    epochs = options.pop("epochs", epochs)  # a cell's own epochs win, as in train_cell
    extra = "".join(_flag(k, v) for k, v in options.items()) + ("" if test else " --no-test")
    return (
        f"duet-sim train --dataset {cell.dataset} --backbone {cell.backbone} "
        f"--method {cell.method}{np_flag}{extra} --seed {cell.seed} --epochs {epochs} "
        f"--prepared {repo_relative(data)} --out OUT"
    )


def _flag(key: str, value: Any) -> str:
    """One train option as its flag: ``arch`` pairs as repeated ``--arch key=value``."""
    if key == "arch":
        if not value:
            return " --arch reference"  # explicitly the reference architecture, not duet/tuned.py
        return "".join(
            f" --arch {k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in value
        )
    if isinstance(value, bool):  # store-true flags, and the store-false ones (--no-augment)
        negated = {"augment": "no-augment"}
        if key in negated:
            return "" if value else f" --{negated[key]}"
        return f" --{key.replace('_', '-')}" if value else ""
    return f" --{key.replace('_', '-')} {value}"


def run_cells(
    cells: Sequence[Cell], epochs: int, data: Path, results: Path, runs: Path, test: bool = True
) -> int:
    """Train every uncached cell, caching its metrics; returns how many were trained.
    ``test=False`` trains and validates only (tuning cells never read the test split)."""
    trained = 0
    for i, cell in enumerate(cells, 1):
        cache = cell.cached(results)
        if cache.is_file():
            print(f"[{i}/{len(cells)}] {cell.table} {cell.name}: cached", flush=True)
            continue
        start = time.perf_counter()
        train_cell(cell, epochs, data, runs, test)
        metrics = json.loads((cell.run_dir(runs) / "metrics.json").read_text())
        metrics |= {
            "cell": cell.name,
            "variant": cell.variant,
            "np": cell.np,
            "wall_seconds": time.perf_counter() - start,
            "command": train_command(cell, epochs, data, test),
        }
        write_json(cache, portable(metrics))
        trained += 1
        key = "accuracy" if DATASETS[cell.dataset].kind == "images" else "auc"  # the table's
        score = metrics[key] if key in metrics else metrics[f"val_{key}"]  # --no-test: val
        print(
            f"[{i}/{len(cells)}] {cell.table} {cell.name}: {score:.4f} "
            f"({metrics['wall_seconds']:.0f} s)",
            flush=True,
        )
    return trained


def train_cell(cell: Cell, epochs: int, data: Path, runs: Path, test: bool = True) -> None:
    """Train ``cell`` with the recipe of `duet-sim train` into its run directory."""
    from simulation.train_recipe import TrainOptions, TrainRecipe

    options: dict[str, Any] = {"seed": cell.seed, "epochs": epochs, "prepared": data}
    if cell.np is not None:
        options["num_generators"] = cell.np
    options |= dict(cell.options)
    # the base model an adapted cell adapts: its table's base cell of the same seed (a probe
    # adapting it differs from it only in adaptation options, which the recipe checks)
    base = dataclasses.replace(cell, method="base", tag="").run_dir(runs)
    if METHODS[cell.method].adapts is not None and (base / "model.pt").is_file():
        options["base_run"] = base  # the same seed's base model: adapt it, do not retrain it
    TrainRecipe(
        TrainOptions(cell.dataset, cell.backbone, cell.method, progress=False, **options),
        cell.run_dir(runs),
    ).run(test=test)
