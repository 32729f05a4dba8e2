"""benchmarks/paper (`python -m benchmarks.paper`): cached cells are skipped, new ones are
cached, and `write` fills the tables from whatever cells exist, marking the rest pending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.paper import grids
from benchmarks.paper.cells import RESULTS, ROOT, load_cells, repo_relative, ridge_path
from benchmarks.paper.claims import claim_md
from benchmarks.paper.fleet_tables import figure4_md
from benchmarks.paper.floor import RIDGE_LAMBDAS, ridge_floor
from benchmarks.paper.folds import fold_cells
from benchmarks.paper.parity import parity_cells
from benchmarks.paper.probes import probe_cells, probes_md
from benchmarks.paper.render import render
from benchmarks.paper.tables import table2_md, table4_md


def fake_metrics(auc: float, backbone: str, method: str) -> dict:
    return {
        "auc": auc,
        "latency_ms": 1.0,
        "params": 100,
        "flops": 200,
        "epochs": 2,
        "backbone": backbone,
        "method": method,
        "train_samples_per_s": 1000.0,
    }


def test_cached_cell_is_skipped_and_new_cell_is_cached(tmp_path, monkeypatch):
    results, runs = tmp_path / "results", tmp_path / "runs"
    done, todo = grids.grid("table1", "movielens-100k", ["din"], ["base", "duet"], [0])
    done.cached(results).parent.mkdir(parents=True)
    done.cached(results).write_text(json.dumps(fake_metrics(0.8, "din", "base")))
    calls = []

    def fake_train_cell(cell, epochs: int, data: Path, runs: Path, test: bool = True):
        calls.append((cell, epochs))
        out = cell.run_dir(runs)
        out.mkdir(parents=True)
        metrics = fake_metrics(0.9, cell.backbone, cell.method)
        metrics["prepared"] = str(ROOT / "runs" / "data")  # the recipe's absolute path
        (out / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr(grids, "train_cell", fake_train_cell)
    assert grids.run_cells([done, todo], 3, tmp_path / "data", results, runs) == 1
    assert [(c.method, c.seed, epochs) for c, epochs in calls] == [("duet", 0, 3)]
    cached = json.loads(todo.cached(results).read_text())
    assert cached["auc"] == 0.9 and "--epochs 3" in cached["command"]
    assert cached["prepared"] == "runs/data"  # no machine's absolute path in a committed cell
    # a second pass trains nothing: both cells are cached now
    assert grids.run_cells([done, todo], 3, tmp_path / "data", results, runs) == 0


def test_np_sweep_cells_and_seed_major_order():
    cells = grids.grid("table2", "ckplus", ["mobilenet_v3_small"], ["base", "duet"], [0, 1])
    assert [c.name for c in cells[:4]] == [
        "mobilenet_v3_small-base-s0",
        "mobilenet_v3_small-duet-np2-s0",
        "mobilenet_v3_small-duet-np3-s0",
        "mobilenet_v3_small-duet-np5-s0",
    ]
    assert {c.seed for c in cells[4:]} == {1}
    # --n-p 5: Table 2's own DUET cell alone, the rest of the sweep left for later
    only5 = grids.grid("table2", "ckplus", ["mobilenet_v3_small"], ["duet"], [0], [5])
    assert [c.name for c in only5] == ["mobilenet_v3_small-duet-np5-s0"]


def test_write_renders_finished_cells_and_marks_the_rest_pending(tmp_path):
    folder = tmp_path / "table1" / "movielens-100k"
    folder.mkdir(parents=True)
    for name, auc, method in (
        ("din-base-s0", 0.80, "base"),
        ("din-base-s1", 0.82, "base"),
        ("din-duet-s0", 0.84, "duet"),
    ):
        cell = fake_metrics(auc, "din", method) | {"variant": method}
        (folder / f"{name}.json").write_text(json.dumps(cell))
    text = render(tmp_path, "movielens-100k", [0, 1], "{{TABLE1}}\n{{TABLE3}}")
    rows = {tuple(r.split(" | ")[:2]): r for r in text.splitlines() if r.startswith("| din")}
    assert "0.8100 ± 0.0141 | — | 2/2" in rows[("| din", "base")]
    assert (
        "0.8400 (1 seed) | — | 1/2 | +3.70% | 0.8581 ± 0.0055 | +2.79% |" in rows[("| din", "duet")]
    )
    assert "| pending | — | 0/2 | pending | — (not in the paper) |" in rows[("| din", "hypernet")]
    assert "| sasrec | base | pending | — | 0/2 |" in text
    assert "| pending |" in text.splitlines()[-1]  # Table 3 not computed yet
    # the claim pairs seeds: base's seed 1 has no duet partner, so only seed 0 counts
    claim = render(tmp_path, "movielens-100k", [0, 1], "{{CLAIM}}")
    assert "| din | +0.0400 | — / — | 1/1 | — | yes (provisional: seeds missing) |" in claim


def test_figure4_renders_curves_gains_and_a_plot(tmp_path):
    gain = {"pairs": 10, "mean": 0.02, "ci95": [0.01, 0.03]}
    phase = {"sessions": 10, "auc": {}, "gain": {"duet": gain}}
    summary = {
        "by_session_index": {"base": [0.8, 0.7], "duet": [0.82, 0.75]},
        "by_group": {
            "shifted": {"base": [0.8, 0.7], "duet": [0.82, 0.75]},
            "control": {"base": [0.8, 0.8], "duet": [0.81, 0.81]},
        },
        "shifts": [
            {
                "operator": "genre_shift",
                "at_session": 1,
                "shifted": {"before": phase, "during": phase},
                "control": {"before": phase},
            }
        ],
        "command": "-m simulation.cli run x.yaml",
        "metric": "accuracy",
    }
    (tmp_path / "fleet").mkdir()
    (tmp_path / "fleet" / "ckplus-figure4.json").write_text(json.dumps(summary))
    lines = figure4_md(tmp_path, "ckplus-figure4", tmp_path / "figure4.png")
    assert lines[0].startswith("Mean session accuracy")
    assert (
        "| shifted | 1 | 0.7000 | 0.7500 |" in lines
        and "| control | 1 | 0.8000 | 0.8100 |" in lines
    )
    assert "| genre_shift @ 1 | shifted | during | 10 | +0.0200 [+0.0100, +0.0300] |" in lines
    assert sum(line.startswith("| genre_shift") for line in lines) == 3
    assert (tmp_path / "figure4.png").stat().st_size > 1000


def test_claim_reports_wins_and_whether_the_gain_beats_seed_noise():
    """Paired t over seeds: a steady gain is significant, a gain one seed reverses is not."""
    steady = {0: (0.80, 0.82), 1: (0.81, 0.83), 2: (0.79, 0.82)}  # seed: (base, duet)
    noisy = {0: (0.80, 0.83), 1: (0.81, 0.80), 2: (0.79, 0.80)}
    cells = {}
    for backbone, runs in (("din", steady), ("sasrec", noisy)):
        for seed, (base, duet) in runs.items():
            cells[f"{backbone}-base-s{seed}"] = {"auc": base}
            cells[f"{backbone}-duet-s{seed}"] = {"auc": duet}
    rows = {r.split(" | ")[0]: r for r in claim_md(cells, [0, 1, 2])}
    assert "| 3/3 | +7.0 (4.30) | yes, significant |" in rows["| din"]
    assert "| 2/3 | +0.9 (4.30) | yes, within noise |" in rows["| sasrec"]
    assert "| pending |" in rows["| gru4rec"]


def test_a_cached_command_reproduces_its_cell_and_adapted_cells_reuse_base(tmp_path):
    """finetune adapts its seed's base checkpoint instead of retraining it, and the command
    stored with the cell reproduces the cell's AUC through `duet-sim train`."""
    from simulation.cli import main as cli_main

    results, runs = tmp_path / "results", tmp_path / "runs"
    data = grids.prepared("synthetic-clicks", None, runs)
    base, finetune = grids.grid("table1", "synthetic-clicks", ["din"], ["base", "finetune"], [0])
    assert grids.run_cells([base, finetune], 1, data, results, runs) == 2
    cell = json.loads(finetune.cached(results).read_text())
    assert cell["base_run"] == repo_relative(base.run_dir(runs))
    command = cell["command"].split()
    assert command[-1] == "OUT"
    assert cli_main([*command[1:-1], str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert cli["auc"] == pytest.approx(cell["auc"], abs=1e-9)


def test_linear_floor_picks_lambda_on_validation_and_scores_test_once(tmp_path, monkeypatch):
    """The ridge floor reads train and val to pick λ, then test once, and learns the
    classes (stripe orientations, one style) well above chance (1/4)."""
    from pipelines.prepare import prepare
    from pipelines.synthetic import SyntheticVideoConfig

    data = tmp_path / "video"
    config = SyntheticVideoConfig(n_subjects=12, sessions_per_subject=4, n_styles=1, noise_std=0.02)
    prepare("synthetic-video", data, knobs=config)
    reads = []
    import pipelines.tensors

    load = pipelines.tensors.load_samples

    def recording(prepared_dir, split):
        reads.append(split)
        return load(prepared_dir, split)

    monkeypatch.setattr("pipelines.tensors.load_samples", recording)
    result = ridge_floor(data)
    assert reads == ["train", "val", "test"]
    assert set(result["val_accuracy_by_lambda"]) == set(RIDGE_LAMBDAS)
    assert result["val_accuracy"] == max(result["val_accuracy_by_lambda"].values())
    assert result["accuracy"] > 0.5 and result["features"] == 48 * 48


def test_table2_puts_the_paper_and_the_linear_floor_beside_ours(tmp_path):
    cells = {}
    for seed, (base, duet) in enumerate(((0.70, 0.75), (0.72, 0.76))):
        for variant, acc in (("base", base), ("duet-np5", duet)):
            cells[f"mobilenet_v3_large-{variant}-s{seed}"] = {
                "accuracy": acc,
                "val_accuracy": acc - 0.01,
                "params": 1,
                "flops": 2,
            }
    ridge = {"lambda": 0.01, "accuracy": 0.63, "val_accuracy": 0.73}
    rows = table2_md(cells, [0, 1], ridge)
    duet = next(r for r in rows if r.startswith("| mobilenet_v3_large | duet | 5 |"))
    # ours: 0.755 / 0.71 - 1 = +6.34%; the paper's: 82.45 / 76.97 - 1 = +7.12%
    assert "| 0.7550 ± 0.0071 | 0.7450 | 2/2 | +6.34% | 0.8245 ± 0.0267 | +7.12% |" in duet
    assert rows[-1].startswith(
        "| raw pixels | linear floor: ridge, λ 0.01 (chosen on val) | — | 0.6300 |"
    )
    table4 = table4_md(cells, [0, 1])
    assert table4[2].startswith("| mobilenet_v3_large (ours / paper) | 0.7100 / 0.7697 |")
    assert "0.7550 / 0.8245 |" in table4[2]


def test_parity_cells_try_each_choice_where_it_exists_and_never_read_test(tmp_path):
    """A SASRec-only choice is not tried on GRU4Rec; every parity cell is a validation-only
    run, and its stored command says so (`--no-test`) and spells its choices as flags."""
    cells = parity_cells(
        "movielens-100k", "gru4rec", 0, ["ours", "small-positions", "target-tower"], ["history"]
    )
    names = [c.name for c in cells]
    assert names == [
        "gru4rec-base-ours-s0",
        "gru4rec-duet-no-swa-ours-history-s0",
        "gru4rec-base-target-tower-s0",
        "gru4rec-duet-no-swa-target-tower-history-s0",
    ]
    command = grids.train_command(cells[3], 2, tmp_path, test=False)
    assert "--arch target_tower=true" in command and "--condition history" in command
    assert command.count("--no-test") == 1
    sasrec = parity_cells("movielens-100k", "sasrec", 0, ["small-positions"], [])
    assert "--arch pos_std=0.05" in grids.train_command(sasrec[0], 2, tmp_path, test=False)


def test_probes_change_one_choice_each_and_never_read_test(tmp_path):
    """Each probe's stored command spells its one change (its own epochs win over the
    table's), is validation-only, and the docs put its score beside the table's cell."""
    cells = {c.tag: c for c in probe_cells("table2")}
    command = grids.train_command(cells["80-epochs"], 40, tmp_path, test=False)
    assert "--epochs 80" in command and "--epochs 40" not in command
    assert "--no-augment" in grids.train_command(cells["no-augment"], 40, tmp_path, test=False)
    folder = tmp_path / "table2" / "ckplus-112x3"
    folder.mkdir(parents=True)
    (folder / "mobilenet_v3_small-base-s0.json").write_text(json.dumps({"val_accuracy": 0.6}))
    probes = tmp_path / "probes" / "ckplus-112x3"
    probes.mkdir(parents=True)
    (probes / f"{cells['cosine'].name}.json").write_text(json.dumps({"val_accuracy": 0.4}))
    rows = {r.split(" | ")[0]: r for r in probes_md(tmp_path, "table2")}
    assert rows["| cosine"].endswith("| 0.4000 | 0.6000 | -0.2000 |")
    assert rows["| batch-64"].endswith("| pending | 0.6000 | — |")
    clicks = probe_cells("table1")
    assert {c.method for c in clicks} == {"base", "duet-no-swa", "duet", "finetune"}
    assert all(c.folder == "movielens-100k" for c in clicks)


def test_cells_are_cached_under_the_names_of_the_committed_cells(tmp_path):
    """Every grid names its cells in one format, the one the committed cells were cached
    under (a renamed cell would be trained again and read as pending), and a fold's cells
    and ridge floor go to a folder of their own that the tables never read as cells."""
    table1 = grids.grid("table1", "movielens-100k", ["din"], ["duet-history"], [0])
    table2 = grids.grid("table2", "ckplus", ["mobilenet_v3_large"], ["duet"], [0], [5], "112x3")
    ours = parity_cells("movielens-100k", "sasrec", 0, ["ours"], ["history"])
    for cell in [*table1, *table2, *ours, *probe_cells("table1"), *probe_cells("table2")]:
        assert cell.cached(RESULTS).is_file(), cell.cached(RESULTS)
    fold = fold_cells(3, ["mobilenet_v3_small"], ["duet"], [5], "112x3")[0]
    assert fold.cached(tmp_path) == (
        tmp_path / "folds" / "ckplus-112x3-folds10" / "mobilenet_v3_small-duet-np5-f3.json"
    )
    floor = ridge_path(tmp_path, "folds", fold.folder, 3)
    assert floor.name == "linear-ridge-f3.json"
    floor.parent.mkdir(parents=True)
    floor.write_text("{}")
    assert load_cells(tmp_path, "folds", fold.folder) == {}
