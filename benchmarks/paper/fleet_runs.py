"""Fleet runs for the docs: Figure 4 (per-session quality across an injected shift), the
conditioning comparison and the request policies, each through `duet-sim run`.

The fleet is the platform's own per-session path (shift injection, generation, on-device
scoring), so no second replay loop is written for the tables; a run's summary is cached as
``benchmarks/paper_results/fleet/<name>.json`` with the command that produced it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import ROOT, Cell, repo_relative, write_json
from benchmarks.paper.grids import EPOCHS, TABLE2_NP, TABLE2_PROTOCOL, prepared, train_cell

FIGURE4_METHODS = ("base", "duet-no-swa", "duet")
FIGURE4_SCENARIO = ROOT / "configs" / "scenarios" / "ml100k-genre-shift.yaml"
FIGURE4_DEVICES = 300  # of ML-100K's 943 users, to keep the fleet run to minutes
FIGURE4_SESSIONS = 3


@dataclass(frozen=True)
class Figure:
    """A Figure 4 fleet run: its scenario, the settings it overrides, and, when it reuses a
    table's trained cells as its checkpoints, those cells (method name -> cell)."""

    scenario: Path
    sets: tuple[str, ...]
    methods: tuple[str, ...] = FIGURE4_METHODS
    cells: tuple[tuple[str, Cell], ...] = ()
    protocol: str = ""  # the prepared data the reused cells were trained on


FLEET_RUNS = {
    # trains its own DIN models (seed 0, Table 1's epochs): the scenario holds out each
    # user's last 3 sessions, Table 1's cells only the last one, so reusing them would score
    # sessions they were trained on
    "ml100k-genre-shift": Figure(
        FIGURE4_SCENARIO,
        (
            f"fleet.devices={FIGURE4_DEVICES}",
            f"fleet.sessions_per_device={FIGURE4_SESSIONS}",
            "fleet.actors=1",
            f"model.train.epochs={EPOCHS['table1']}",
            "model.train.seed=0",
        ),
    ),
    # the paper's own Figure 4 (CK+, MobileNetV3-Large): the scenario's split is Table 2's,
    # so it scores Table 2's seed-0 models on the videos they were tested on
    "ckplus-figure4": Figure(
        ROOT / "configs" / "scenarios" / "ckplus-figure4.yaml",
        ("fleet.actors=1",),
        cells=tuple(
            (
                m,
                Cell(
                    "table2",
                    "ckplus",
                    "mobilenet_v3_large",
                    m,
                    0,
                    TABLE2_NP if m == "duet" else None,
                    protocol=TABLE2_PROTOCOL,
                ),
            )
            for m in FIGURE4_METHODS
        ),
        protocol=TABLE2_PROTOCOL,
    ),
    # DUET conditioned per session beside per impression, on the same devices: the
    # communication side of the conditioning choice (requests, bytes), with Table 1's epochs
    "ml100k-conditioning": Figure(
        ROOT / "configs" / "scenarios" / "ml100k-conditioning.yaml",
        (f"model.train.epochs={EPOCHS['table1']}", "model.train.seed=0", "fleet.actors=1"),
        methods=(),  # the scenario's own: base, duet, duet-history
    ),
    # request policies (issue: when to ask the cloud): the scenario's methods, its own DIN
    # models (seed 0, Table 1's epochs), Figure 4's device count
    "ml100k-request-policies": Figure(
        ROOT / "configs" / "scenarios" / "ml100k-request-policies.yaml",
        (
            f"fleet.devices={FIGURE4_DEVICES}",
            "fleet.actors=1",
            f"model.train.epochs={EPOCHS['table1']}",
            "model.train.seed=0",
        ),
        methods=(),
    ),
}


def curves_by_group(run_dir: Path, metric: str) -> dict[str, dict[str, list[float]]]:
    """Mean ``metric`` per method and session index, for the devices under the run's first
    shift ("shifted") and the others ("control"): the figure's two panels."""
    import polars as pl

    from actors.storage.sink import read_sessions

    rows = pl.DataFrame(read_sessions(run_dir / "sessions"))
    shifted = pl.read_parquet(run_dir / "devices.parquet").filter(
        pl.col("shifts").list.contains(0)
    )["device_id"]
    rows = rows.with_columns(
        group=pl.when(pl.col("device_id").is_in(shifted.implode()))
        .then(pl.lit("shifted"))
        .otherwise(pl.lit("control"))
    )
    means = (
        rows.filter(pl.col(metric).is_not_nan())
        .group_by("group", "method", "session_index")
        .agg(pl.col(metric).mean())
        .sort("session_index")
    )
    out: dict[str, dict[str, list[float]]] = {}
    for (group, method), part in means.group_by("group", "method", maintain_order=True):
        out.setdefault(str(group), {})[str(method)] = part[metric].to_list()
    return out


def run_fleet(name: str, data_dir: Path | None, results: Path, runs: Path) -> None:
    """One of :data:`FLEET_RUNS`, resumed where a previous run stopped, unless cached."""
    out = results / "fleet" / f"{name}.json"
    if out.is_file():
        print(f"fleet: cached {out}")
        return
    run_dir = runs / "fleet" / name
    command = fleet_command(FLEET_RUNS[name], run_dir, data_dir, runs)
    subprocess.run([sys.executable, *command], check=True, cwd=ROOT)
    summary = fleet_summary(run_dir)
    write_json(out, summary | {"command": ".venv/bin/python " + " ".join(command)})
    print(f"fleet: written {out}")


def fleet_command(figure: Figure, run_dir: Path, data_dir: Path | None, runs: Path) -> list[str]:
    """`duet-sim run`'s arguments for ``figure``, as ``python -m simulation.cli`` takes them."""
    command = [
        "-m",
        "simulation.cli",
        "run",
        repo_relative(figure.scenario),
        "--out",
        repo_relative(run_dir),
        "--no-progress",
        "--num-cpus",
        "2",
    ]
    command += [x for s in _settings(figure, data_dir, runs) for x in ("--set", s)]
    if (run_dir / "run.json").is_file():
        command.append("--resume")
    return command


def _settings(figure: Figure, data_dir: Path | None, runs: Path) -> list[str]:
    """The scenario overrides of ``figure``; the table cells it reuses as checkpoints are
    trained first where this machine has no checkpoint of them."""
    sets = list(figure.sets)
    if figure.methods:
        sets.append(f"methods=[{','.join(figure.methods)}]")
    if figure.cells:
        data = prepared("ckplus", data_dir, runs, figure.protocol)
        sets.append(f"data.prepared={repo_relative(data)}")
        for method, cell in figure.cells:
            if not (cell.run_dir(runs) / "model.pt").is_file():
                print(f"figure4: training {cell.name} (no checkpoint here)", flush=True)
                train_cell(cell, EPOCHS[cell.table], data, runs)
            sets.append(
                f"model.checkpoints.mobilenet_v3_large/{method}={repo_relative(cell.run_dir(runs))}"
            )
    return sets


# what the docs render of a run's summary.json
SUMMARY_KEYS = (
    "scenario",
    "devices",
    "methods",
    "gains",
    "by_session_index",
    "shifts",
    "metric",
    "sessions_per_s",
    "request_policies",
    "request_gates",
)


def fleet_summary(run_dir: Path) -> dict[str, Any]:
    """The part of a finished run's summary the docs render, with the two panels of Figure
    4 (:func:`curves_by_group`) for a run that injects shifts."""
    summary = json.loads((run_dir / "summary.json").read_text())
    payload = {k: summary[k] for k in SUMMARY_KEYS if k in summary}
    if summary.get("shifts"):
        payload["by_group"] = curves_by_group(run_dir, summary.get("metric", "auc"))
    return payload
