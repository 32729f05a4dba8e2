"""The four one-file plugins of examples/plugins/ (docs/plugins.md), each run end to end as a
user would: the trained method by `duet-sim train --plugin`, the dataset by `duet-sim data
prepare --plugin`, and all four together in one scenario on a real local Ray + Serve, where
the generator's replicas and the fleet actors load them from the scenario's ``plugins:``."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from duet.registry import load_plugins
from pipelines.shifts import ClickSession, ShiftContext
from pipelines.synthetic import SyntheticClicksConfig, synthetic_clicks

from ..conftest import cli_exit

PLUGINS = [
    "examples.plugins.duet_temperature",
    "examples.plugins.csv_clicks",
    "examples.plugins.repeat_clicks",
    "examples.plugins.stale_or_drift",
]


@pytest.fixture(scope="module")
def click_log(tmp_path_factory):
    """A user's own click log: ``DIR/clicks-csv/clicks.csv`` (user,item,timestamp,rating)."""
    root = tmp_path_factory.mktemp("log")
    config = SyntheticClicksConfig(n_users=40, n_items=150, n_clusters=6, sessions_per_user=6)
    clicks, _ = synthetic_clicks(config, seed=3)
    folder = root / "clicks-csv"
    folder.mkdir()
    clicks.select(user="user_id", item="item_id", timestamp="ts", rating=pl.lit(4)).write_csv(
        folder / "clicks.csv"
    )
    return root


def test_the_csv_dataset_is_prepared_by_the_data_command(click_log, tmp_path, capsys):
    args = ["data", "prepare", "--plugin", "examples.plugins.csv_clicks", "--dataset"]
    assert (
        cli_exit([*args, "csv-clicks", "--data-dir", str(click_log), "--out", str(tmp_path / "p")])
        == 0
    )
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["dataset"] == "csv-clicks" and meta["num_users"] == 40
    assert meta["genres"] == ["unknown"] and meta["counts"]["test_sessions"] == 40
    bad = tmp_path / "bad" / "clicks-csv"
    bad.mkdir(parents=True)
    (bad / "clicks.csv").write_text("user,item\n1,2\n")
    out = tmp_path / "q"
    assert cli_exit([*args, "csv-clicks", "--data-dir", str(bad.parent), "--out", str(out)]) == 1
    assert "clicks.csv: missing column(s) ['timestamp']" in capsys.readouterr().err
    assert not out.exists()


def test_the_trained_method_trains_and_is_evaluated_offline(prepared, tmp_path):
    """`duet-sim train --plugin ... --method duet-temperature`: its own checkpoint, with the
    extra output unit its head reads, and every offline metric (full ranking included)."""
    out = tmp_path / "run"
    argv = ["train", "--plugin", "examples.plugins.duet_temperature"]
    argv += ["--method", "duet-temperature", "--dataset", "synthetic-clicks", "--backbone"]
    argv += ["din", "--prepared", str(prepared), "--epochs", "1", "--full-ranking"]
    assert cli_exit([*argv, "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["auc"] < 1.0 and 0.0 <= metrics["full_hr@10"] <= 1.0
    assert metrics["latency_ms"] > 0  # the generator's forward for one device
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["method"] == "duet-temperature" and model["ppg"]["num_generators"] == 5
    assert model["classifier"]["head"] == "temperature" and model["classifier"]["dims"][-1] == 33


def test_the_temperature_head_scales_duets_logit_per_row():
    load_plugins(["examples.plugins.duet_temperature"])
    from duet.dynamic import HEADS

    head, dot = HEADS["temperature"], HEADS["dot"]
    out, target = torch.randn(2, 5, 4), torch.randn(2, 5, 3)
    scale = torch.nn.functional.softplus(out[..., -1]) + 0.1
    torch.testing.assert_close(head.logits(out, target), dot.logits(out[..., :-1], target) * scale)
    items = torch.randn(7, 3)
    flat = out[0]  # (P, O)
    expected = (flat[:, :-1] @ items.T) * (torch.nn.functional.softplus(flat[:, -1:]) + 0.1)
    torch.testing.assert_close(head.item_logits(flat, items), expected)


def test_repeat_clicks_repeats_earlier_clicks_only():
    load_plugins(["examples.plugins.repeat_clicks"])
    from pipelines.shifts import build_shift

    op = build_shift({"type": "repeat_clicks", "rate": 1.0})
    session = ClickSession(0, 0, np.arange(1, 11), np.array([0, 0, 5, 6, 7]))
    shifted = op.apply(session, np.random.default_rng(0), ShiftContext())
    assert shifted.items[0] == 1 and set(shifted.items) <= {1}  # rate 1: all repeat the first
    assert shifted.realtime.tolist() == [0, 0, 5, 5, 5]
    kept = build_shift({"type": "repeat_clicks", "rate": 0.5, "realtime": False})
    half = kept.apply(session, np.random.default_rng(1), ShiftContext())
    original = session.items
    assert all(c == original[i] or c in original[:i] for i, c in enumerate(half.items))
    assert 0 < int((half.items != session.items).sum()) < 9
    assert half.realtime is session.realtime
    with pytest.raises(ValueError, match=r"rate: expected a number in \(0, 1\], got 1.5"):
        build_shift({"type": "repeat_clicks", "rate": 1.5})


def test_stale_or_drift_asks_when_the_cache_is_old_or_the_device_drifted():
    load_plugins(["examples.plugins.stale_or_drift"])
    from actors.devices.policies import POLICIES, CacheState

    policy = POLICIES["stale_or_drift"].model_validate({"type": "stale_or_drift", "max_age": 2})
    state, reasons = CacheState(), []
    for drift in (math.inf, 0.1, 0.1, 0.9, 0.1):
        decision = policy.decide(state, drift)
        if decision.request:
            state.store("params", np.ones(2), "v")
        state.sessions += 1
        reasons.append(decision.reason)
    # asks: nothing cached; the cache 2 sessions old; drift 0.9 > 0.4
    assert reasons == ["requested", "cached", "requested", "requested", "cached"]


@pytest.mark.ray
def test_all_four_plugins_run_together_in_a_scenario(local_ray, click_log, tmp_path):
    """One scenario naming the four plugin modules: the CSV log is prepared, base, DUET and
    duet-temperature are trained, the generator serves the plugin's checkpoint, devices shift
    by the plugin operator and one DUET variant asks by the plugin policy."""
    out = tmp_path / "out"
    doc = {
        "version": 1,
        "name": "plugins",
        "data": {"dataset": "csv-clicks", "data_dir": str(click_log)},
        "model": {"backbones": ["din"], "train": {"epochs": 1}},
        "plugins": PLUGINS,
        "methods": [
            "base",
            "duet",
            "duet-temperature",
            {"name": "duet-fresh", "method": "duet", "policy": {"type": "stale_or_drift"}},
        ],
        "fleet": {"devices": 16, "sessions_per_device": 3, "actors": 1},
        "shifts": [{"operator": "repeat_clicks", "params": {"rate": 0.5}, "at_session": 1}],
        "output": {"dir": str(out)},
    }
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert cli_exit(["run", str(path), "--no-progress"]) == 0
    rows = pl.read_parquet(out / "sessions")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accounting"]["complete"]
    by_method = dict(rows.group_by("method").len().iter_rows())
    assert by_method == {
        m: by_method["base"] for m in ("base", "duet", "duet-temperature", "duet-fresh")
    }
    temp = rows.filter(pl.col("method") == "duet-temperature")
    assert (temp["requests"] >= 1).all() and not temp["fallback"].any()  # served, not fallen back
    fresh = rows.filter(pl.col("method") == "duet-fresh")
    assert set(fresh["policy"]) == {"stale_or_drift(max_age=3,threshold=0.4)"}
    assert rows.filter(pl.col("session_index") >= 1)["shift_active"].all()


BAD_PLUGINS = {
    "plugin_broken": ("import no_such_module\n", "cannot be imported: ModuleNotFoundError"),
    "plugin_taken": (
        "from duet.method import METHODS\nfrom duet.methods import Duet\n\n"
        "@METHODS.register('duet')\nclass Mine(Duet):\n    pass\n",
        "method 'duet' is already registered by duet.methods.Duet",
    ),
    "plugin_incomplete": (
        "from dataclasses import dataclass\nfrom pipelines.shifts import SHIFTS, ShiftOperator\n\n"
        "@SHIFTS.register('nothing')\n@dataclass(frozen=True)\nclass Nothing(ShiftOperator):\n"
        "    rate: float = 0.1\n",
        "shift operator 'nothing': plugin_incomplete.Nothing does not implement apply",
    ),
}


@pytest.mark.parametrize("module", list(BAD_PLUGINS))
@pytest.mark.parametrize("where", ["scenario", "flag"])
def test_a_bad_plugin_is_refused_by_validate_naming_the_module(
    scenario_file, tmp_path, monkeypatch, capsys, module, where
):
    """A module that does not import, registers a taken name or a class missing a required
    method: `duet-sim validate` exits 2 naming the module, from ``plugins:`` (with the field's
    line) or from ``--plugin``."""
    code, message = BAD_PLUGINS[module]
    (tmp_path / f"{module}.py").write_text(code)
    monkeypatch.chdir(tmp_path)  # a scenario's plugins are found under the working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    if where == "scenario":
        argv = ["validate", str(scenario_file(plugins=[module]))]
    else:
        argv = ["validate", str(scenario_file()), "--plugin", module]
    assert cli_exit(argv) == 2
    err = capsys.readouterr().err
    assert f"plugin {module!r}" in err and message in err, err
    if where == "scenario":
        assert "tiny.yaml: plugins (line " in err
