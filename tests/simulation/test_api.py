"""simulation/api.py, the notebook entry point: `load` takes a file, YAML text or a dict and
overrides as `--set` does, refusing bad input with the CLI's errors; `run` goes the CLI's way
and returns the rows as a DataFrame and summary.json as typed objects; `open_run` reads the
same result back from the run directory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from simulation import api
from simulation.errors import OutputError
from simulation.scenario_file import ScenarioError

from ..conftest import cli_exit

SMALL = {"fleet.devices": 8, "fleet.sessions_per_device": 2, "fleet.actors": 1}
REPO = Path(__file__).resolve().parents[2]


def test_importing_the_api_imports_neither_torch_nor_ray():
    code = "import sys, simulation.api; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_load_takes_a_file_text_or_dict_with_set_style_overrides(scenario_file, capsys):
    path = scenario_file()
    from_file = api.load(path, ["fleet.devices=8", "methods=[base, duet]"])
    from_text = api.load(path.read_text(), {"fleet.devices": 8, "methods": ["base", "duet"]})
    doc = yaml.safe_load(path.read_text())
    doc["data"]["prepared"] = Path(doc["data"]["prepared"])  # a notebook's Path is a path
    from_dict = api.load(doc, {"fleet.devices": 8, "methods": ["base", "duet"]})
    assert from_file == from_text == from_dict
    assert from_file.fleet.devices == 8 and from_file.method_names == ["base", "duet"]

    with pytest.raises(ScenarioError) as bad:
        api.load(path, {"fleet.devices": 0})
    assert bad.value.problems[0].startswith("tiny.yaml: fleet.devices (override): ")
    assert cli_exit(["validate", str(path), "--set", "fleet.devices=0"]) == 2
    assert capsys.readouterr().err.splitlines()[1:] == [f"  {p}" for p in bad.value.problems]
    with pytest.raises(ScenarioError, match="name \\(line 2\\)"):
        api.load(path.read_text().replace("name: tiny", "name: two words"))
    with pytest.raises(ScenarioError, match="expected a dotted KEY.SUB"):
        api.load(path, {"fleet.devices=8": 8})
    with pytest.raises(ScenarioError, match="override 'seed': .* is not plain YAML data"):
        api.load(path, {"seed": object()})


def defined(value: Any) -> Any:
    """summary.json's NaN (undefined) as the typed summary says it: None."""
    return None if isinstance(value, float) and math.isnan(value) else value


def same_json(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same summary.json text (NaN, unequal to itself, is one token there)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.ray
def test_run_gives_rows_and_a_typed_summary_that_open_run_reads_back(
    local_ray, scenario_file, tmp_path, capsys
):
    out = tmp_path / "out"
    result = api.run(api.load(scenario_file(), SMALL), out, progress=False, num_cpus=2)
    printed = capsys.readouterr().out
    assert f"ray and serve logs: {out / 'ray.log'}" in printed and "report: " in printed
    assert result.out == str(out) and result.report == str(out / "report.md")
    assert (out / "report.md").is_file() and (out / "ray.log").is_file()

    raw = json.loads((out / "summary.json").read_text())
    expected = json.loads((out / "run.json").read_text())["expected_sessions"]
    rows = result.sessions
    assert isinstance(rows, pl.DataFrame)
    assert rows.select("device_id", "session_index", "method").is_unique().all()
    assert dict(rows.group_by("method").len().iter_rows()) == expected
    per_session = rows.group_by("device_id", "session_index").agg(pl.col("method").sort())
    assert per_session["method"].to_list() == [sorted(expected)] * per_session.height

    summary = result.summary
    assert (summary.run_id, summary.scenario, summary.metric) == (raw["run_id"], "tiny", "auc")
    assert (summary.wall_s, summary.sessions_per_s) == (raw["wall_s"], raw["sessions_per_s"])
    assert summary.sessions_simulated == raw["sessions_simulated"] > 0
    assert summary.accounting.complete and summary.accounting.missing == {}
    assert {m: w.written for m, w in summary.accounting.methods.items()} == expected
    assert list(summary.methods) == list(raw["methods"]) == ["base", "duet", "finetune"]
    for method, typed in summary.methods.items():
        stats = raw["methods"][method]
        assert typed.sessions == stats["sessions"] == expected[method]
        for key in ("auc_mean", "auc_std", "accuracy_mean", "accuracy_std", "requests_mean"):
            assert getattr(typed, key) == defined(stats[key]), key
        assert typed.latency_s.p95 == stats["latency_s"]["p95"]
        gain = raw["gains"].get(method)
        assert (typed.gain is None) == (gain is None) == (method == "base")
        if gain is not None:
            assert typed.gain.mean == defined(gain["mean"]) and gain["pairs"] == typed.gain.pairs
            assert typed.gain.ci95 == tuple(defined(x) for x in gain["ci95"])
    assert same_json(result.raw, raw)

    opened = api.open_run(out)
    assert opened == result and same_json(opened.raw, raw)
    assert opened.sessions.equals(rows)
    with pytest.raises(OutputError, match="already holds a run"):
        api.run(api.load(scenario_file(), SMALL), out, progress=False)
    with pytest.raises(FileNotFoundError, match="holds no finished run"):
        api.open_run(tmp_path / "nothing")
