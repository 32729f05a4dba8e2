"""`duet-sim run` end to end on a real local Ray + Serve: every expected session is a row per
method, the summary holds the paired gains and shift phases, and `--resume` completes a run
whose part files were lost, without duplicates."""

from __future__ import annotations

import json

import polars as pl
import pytest

from simulation.cli import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ARGS = ["--num-cpus", "2", "--no-progress"]


def written(out) -> dict[str, int]:
    rows = pl.read_parquet(out / "sessions")
    assert rows.select("device_id", "session_index", "method").is_unique().all()
    return dict(rows.group_by("method").len().iter_rows())


def test_run_then_resume_after_lost_parts(local_ray, scenario_file, tmp_path, capsys):
    path, out = scenario_file(), tmp_path / "out"
    assert main(["run", str(path), *ARGS]) == 0
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert run["status"] == "finished" and summary["run_id"] == run["run_id"]
    assert written(out) == run["expected_sessions"]  # session accounting, per method
    assert summary["accounting"]["complete"] and summary["accounting"]["duplicates"] == 0
    assert set(summary["methods"]) == {"base", "duet", "finetune"}
    low, high = summary["gains"]["duet"]["ci95"]
    assert low <= summary["gains"]["duet"]["mean"] <= high
    phases = summary["shifts"][0]
    assert set(phases["shifted"]) == {"before", "during"} and phases["devices"] == 15
    assert {"p50", "p95", "p99"} <= set(summary["methods"]["duet"]["latency_s"])
    assert "finetune_s" in summary["latency_comparison"]
    assert "sessions/s" in capsys.readouterr().out

    lost = sorted(out.glob("sessions/fleet=*/part-*.parquet"))[::2]
    for part in lost:
        part.unlink()
    assert sum(written(out).values()) < sum(run["expected_sessions"].values())
    assert main(["run", str(path), "--resume", *ARGS]) == 0
    assert written(out) == run["expected_sessions"]
    assert json.loads((out / "run.json").read_text())["run_id"] == run["run_id"]


def test_existing_output_needs_resume_and_same_scenario(scenario_file, tmp_path, capsys):
    path, out = scenario_file(), tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    assert main(["run", str(path), *ARGS]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    (out / "scenario.yaml").write_text("name: other\n")
    assert main(["run", str(path), "--resume", *ARGS]) == 2
    assert "the scenario differs" in capsys.readouterr().err
    assert main(["run", str(path), "--out", str(tmp_path / "fresh"), "--resume", *ARGS]) == 2
    assert "nothing to resume" in capsys.readouterr().err
