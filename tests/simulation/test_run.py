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


def test_request_policies_and_a_plugin_method_run_end_to_end(local_ray, scenario_file, tmp_path):
    """Policy variants share duet's checkpoint and generator; the learned gate is trained
    before the fleets start; the plugin method is imported in the fleet actors; the summary
    and report hold the trade-off."""
    methods = [
        "base",
        "duet",
        {"name": "duet-k2", "method": "duet", "policy": {"type": "every_k", "k": 2}},
        {"name": "duet-gate", "method": "duet", "policy": {"type": "learned", "pairs": 100}},
        {"name": "duet-blend", "method": "duet-blend"},
    ]
    path = scenario_file(methods=methods, plugins=["examples.plugins.duet_blend"])
    out = tmp_path / "out"
    assert main(["run", str(path), *ARGS]) == 0
    run = json.loads((out / "run.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert written(out) == run["expected_sessions"] and summary["accounting"]["complete"]
    policies = summary["request_policies"]
    assert set(policies) == {"duet", "duet-k2", "duet-gate", "duet-blend"}
    assert (
        policies["duet-k2"]["policy"] == "every_k(k=2)"
        and policies["duet-k2"]["reference"] == "duet"
    )
    assert 0 < policies["duet-k2"]["request_fraction"] < 1
    assert set(policies["duet-k2"]["decisions"]) == {"requested", "cached"}
    assert "gain_vs_reference" in policies["duet-k2"] and "gain_kept" in policies["duet-gate"]
    [gate] = summary["request_gates"].values()
    assert gate["parameters"] == 3 and gate["training_pairs"] > 0
    assert not list((out / "models").glob("din-duet-k2*"))  # no checkpoint of its own
    report = (out / "report.md").read_text()
    assert "## Request policies" in report and (out / "report" / "request_policies.png").is_file()
