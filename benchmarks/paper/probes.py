"""Training probes: choices of the table protocols questioned after the fact, on the
validation split only.

Each probe is one change at a time on a table cell (seed 0), so none of them reads the test
split. CK+: what was tried to lift MobileNetV3-Small's base above the linear floor (Table
2). ML-100K: whether Table 1's 2 epochs stop the models early (every validation curve still
rises at epoch 2), whether SWA catches up with duet-no-swa given more of them, and whether
our per-session finetune does better with gentler settings than its defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import Cell, cell_name, load_cells
from benchmarks.paper.grids import EPOCHS, TABLE2_PROTOCOL, prepared, run_cells

PROBES: tuple[tuple[str, str, str, str, tuple[tuple[str, Any], ...]], ...] = (
    # (table, backbone, method, tag, options)
    # no change (no tag; the docs call it the rerun): the cell again, with today's code
    # (channels-last convolutions since the Table 2 seeds 0-2 cells ran): how far a rerun
    # lands from the cell it repeats
    ("table2", "mobilenet_v3_small", "base", "", ()),
    ("table2", "mobilenet_v3_small", "base", "batch-64", (("batch_size", 64),)),
    ("table2", "mobilenet_v3_small", "base", "no-weight-decay", (("weight_decay", 0.0),)),
    ("table2", "mobilenet_v3_small", "base", "lr-2e-3", (("lr", 2e-3),)),
    ("table2", "mobilenet_v3_small", "base", "cosine", (("lr_schedule", "cosine"),)),
    ("table2", "mobilenet_v3_small", "base", "80-epochs", (("epochs", 80),)),
    ("table2", "mobilenet_v3_small", "base", "no-augment", (("augment", False),)),
    ("table1", "din", "base", "6-epochs", (("epochs", 6),)),
    ("table1", "din", "duet-no-swa", "6-epochs", (("epochs", 6),)),
    ("table1", "din", "duet", "6-epochs", (("epochs", 6),)),
    # our per-session finetune was never tuned (10 Adam steps at lr 1e-2): gentler settings,
    # each adapting one base model trained again here (no tag: the one the finetunes find)
    ("table1", "din", "base", "", ()),
    ("table1", "din", "finetune", "lr-1e-3", (("finetune_lr", 1e-3),)),
    ("table1", "din", "finetune", "lr-1e-4", (("finetune_lr", 1e-4),)),
    ("table1", "din", "finetune", "3-steps", (("finetune_steps", 3),)),
)
PROBE_DATA = {"table1": ("movielens-100k", ""), "table2": ("ckplus", TABLE2_PROTOCOL)}


def probe_cells(table: str, seed: int = 0) -> list[Cell]:
    """The probes of one table's cells, in :data:`PROBES` order."""
    dataset, protocol = PROBE_DATA[table]
    return [
        Cell("probes", dataset, backbone, method, seed, tag=tag, options=options, protocol=protocol)
        for t, backbone, method, tag, options in PROBES
        if t == table
    ]


def run_probes(tables: Sequence[str], data_dir: Path | None, results: Path, runs: Path) -> None:
    """Train the probes of ``tables`` with their table's epochs, validation only."""
    for table in tables:
        dataset, protocol = PROBE_DATA[table]
        data = prepared(dataset, data_dir, runs, protocol)
        run_cells(probe_cells(table), EPOCHS[table], data, results, runs, test=False)


def probes_md(results: Path, table: str) -> list[str]:
    """Each probe's validation score beside the seed-0 table cell it changes."""
    cells = probe_cells(table)
    folder = cells[0].folder
    key = "val_accuracy" if table == "table2" else "val_auc"
    reference = load_cells(results, table, folder)
    probes = load_cells(results, "probes", folder)
    lines = [
        f"| probe (seed 0) | backbone, method | change | {key.replace('_', ' ')} "
        "| the table's cell | change − cell |",
        "|---|---|---|---:|---:|---:|",
    ]
    for cell in cells:
        got = probes.get(cell.name, {}).get(key)
        ref = reference.get(cell_name(cell.backbone, cell.method, cell.seed), {}).get(key)
        change = ", ".join(f"{k} {v}" for k, v in cell.options)
        fmt = lambda v: "pending" if v is None else f"{v:.4f}"  # noqa: E731
        gain = "—" if got is None or ref is None else f"{got - ref:+.4f}"
        lines.append(
            f"| {cell.tag or 'rerun'} | {cell.backbone}, {cell.method} | {change or 'none'} "
            f"| {fmt(got)} "
            f"| {fmt(ref)} | {gain} |"
        )
    return lines
