"""`duet-sim report`: table numbers against a direct polars computation, series counts of each
figure before saving, non-blank PNGs, both Parquet layouts, the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle
from PIL import Image

from simulation.cli import main
from simulation.report import (
    auc_distribution,
    auc_over_sessions,
    comparison_table,
    latency_cdfs,
    load_sessions,
    shift_table,
)

METHODS = ["base", "finetune", "hypernet", "duet-no-swa", "duet"]


def labelled_lines(ax) -> list[str]:
    return [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def test_table_matches_direct_polars(run_dir: Path, session_rows: pl.DataFrame) -> None:
    table = comparison_table(load_sessions(run_dir))
    assert table["series"].to_list() == METHODS  # baselines first, DUET last
    rows = session_rows.with_columns(pl.col("auc").fill_nan(None))
    for r in table.iter_rows(named=True):
        m = rows.filter(pl.col("method") == r["series"])
        auc = m["auc"].drop_nulls().to_numpy()
        assert r["sessions"] == m.height and r["devices"] == m["device_id"].n_unique()
        assert r["auc_mean"] == pytest.approx(auc.mean()) and r["auc_std"] == pytest.approx(
            auc.std(ddof=1)
        )
        lat = m["latency_s"].to_numpy()
        assert r["latency_p50_s"] == pytest.approx(np.percentile(lat, 50))
        assert r["latency_p99_s"] == pytest.approx(np.percentile(lat, 99))
        assert r["bytes_down_mean"] == pytest.approx(m["bytes_down"].mean())
        assert r["fallback_rate"] == pytest.approx(m["fallback"].mean())
        if r["series"] == "base":
            assert r["gain"] is None
            continue
        # paired: same device and session as base, pooled over pairs
        base = rows.filter(pl.col("method") == "base")
        pairs = m.join(base, on=["device_id", "session_index"], suffix="_base")
        pairs = pairs.drop_nulls(["auc", "auc_base"])
        assert r["gain"] == pytest.approx((pairs["auc"] - pairs["auc_base"]).mean())
        assert r["gain_lo"] < r["gain"] < r["gain_hi"]
    duet = table.filter(pl.col("series") == "duet").row(0, named=True)
    assert duet["gain_lo"] > 0.03  # the fixture's +0.04 for DUET is found


def test_shift_table_separates_phases(run_dir: Path, session_rows: pl.DataFrame) -> None:
    t = shift_table(load_sessions(run_dir))
    shifted = session_rows.filter(pl.col("shift_active") & (pl.col("method") == "duet"))
    row = t.filter(pl.col("series") == "duet").row(0, named=True)
    assert row["sessions_under_shift"] == shifted.height
    assert row["auc_under_shift"] == pytest.approx(shifted["auc"].fill_nan(None).mean())
    assert row["auc_under_shift"] < row["auc_no_shift"] - 0.04  # the fixture's shift costs 0.08


def test_auc_over_sessions_series_and_shift_marks(run_dir: Path) -> None:
    fig = auc_over_sessions(load_sessions(run_dir))
    top, bottom = fig.axes
    assert labelled_lines(top) == METHODS
    assert labelled_lines(bottom) == METHODS[1:]  # base has no gain over itself
    assert all(len(ln.get_xdata()) == 10 for ln in top.get_lines())  # one point per session
    spans = [p for p in top.patches if isinstance(p, Rectangle)]
    assert len(spans) == 3  # sessions 4, 5, 6 of the fixture are under a shift
    assert any("genre_shift" in t.get_text() for t in top.get_legend().get_texts())


def test_no_shift_no_marks(tmp_path: Path, make_rows, make_run_dir) -> None:
    rows = make_rows(devices=4, sessions=5, shift_start=0, shift_end=0)
    fig = auc_over_sessions(load_sessions(make_run_dir(tmp_path / "run", rows)))
    assert not fig.axes[0].patches
    assert labelled_lines(fig.axes[0]) == METHODS


def test_session_axis_ticks_whole_sessions(tmp_path: Path, make_rows, make_run_dir) -> None:
    """Few sessions: matplotlib's default locator would put ticks at 0.5, 1.5, ..."""
    rows = make_rows(devices=4, sessions=3, shift_start=0, shift_end=0)
    fig = auc_over_sessions(load_sessions(make_run_dir(tmp_path / "run", rows)))
    fig.canvas.draw()
    ticks = fig.axes[1].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)


def test_distribution_and_latency_series(run_dir: Path, session_rows: pl.DataFrame) -> None:
    rows = load_sessions(run_dir)
    ax = auc_distribution(rows).axes[0]
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == len(METHODS)
    assert [t.get_text() for t in ax.get_xticklabels()] == METHODS
    fig = latency_cdfs(rows)
    expected = {  # methods that use each component in the fixture
        "upload": 2,
        "generate": 3,
        "download": 3,
        "inference": 5,
        "finetune": 1,
        "end to end": 5,
    }
    assert {ax.get_title(): len(ax.get_lines()) for ax in fig.axes} == expected


def assert_png_nontrivial(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500, pixels.shape
    non_white = (pixels < 250).any(axis=2).mean()
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.std() > 20 and non_white > 0.03 and colours > 50, (path, non_white, colours)


def test_both_parquet_layouts_load_the_same_rows(
    tmp_path: Path, session_rows, make_run_dir
) -> None:
    keys = ["device_id", "session_index", "method"]
    single = load_sessions(make_run_dir(tmp_path / "a", session_rows)).sort(keys)
    tree = load_sessions(make_run_dir(tmp_path / "b", session_rows, partitioned=True)).sort(keys)
    assert tree.columns == single.columns  # no partition column (fleet=...) added
    assert tree.equals(single)


def test_mixed_models_are_separate_series(tmp_path: Path, make_rows, make_run_dir) -> None:
    rows = pl.concat(
        [
            make_rows(devices=4, sessions=3),
            make_rows(devices=4, sessions=3).with_columns(backbone=pl.lit("gru4rec")),
        ]
    )
    table = comparison_table(load_sessions(make_run_dir(tmp_path / "run", rows)))
    assert "movielens-100k/gru4rec/duet" in table["series"].to_list()
    assert table.height == 2 * len(METHODS)


def test_cli_writes_report_with_nontrivial_plots(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.md")
    text = (run_dir / "report.md").read_text()
    for stem in ("auc_over_sessions", "auc_distribution", "latency_cdfs"):
        assert f"](report/{stem}.png)" in text
        assert_png_nontrivial(run_dir / "report" / f"{stem}.png")
    assert "| duet | 120 | 12 |" in text  # 12 devices x 10 sessions
    assert "genre_shift" in text
    with pytest.raises(SystemExit, match="report: error: .*no sessions.parquet"):
        main(["report", str(tmp_path / "missing")])


def test_run_without_the_report_extra_warns_in_one_line(run_dir: Path, monkeypatch, capsys) -> None:
    from simulation.api import report_run

    report_run(run_dir)  # what `duet-sim run` does at its end
    assert capsys.readouterr().out.strip() == f"report: {run_dir / 'report.md'}"
    monkeypatch.setitem(sys.modules, "simulation.report", None)  # matplotlib not installed
    report_run(run_dir)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: no report.md" in err and "duet-sim[report]" in err


def test_report_and_summary_state_the_same_gains(
    session_rows: pl.DataFrame, tmp_path: Path, make_run_dir
) -> None:
    """One statistic, one implementation: the report's gain and 95% interval for every
    method are summary.json's, whether the report reads the summary or recomputes them."""
    from simulation.run_summary import summarize

    expected = dict(session_rows.group_by("method").len().iter_rows())
    devices = (
        session_rows.select("device_id")
        .unique()
        .with_columns(shifts=pl.lit([], dtype=pl.List(pl.Int64)))
    )
    summary = summarize(session_rows, devices, expected, [], seed=7)
    run = make_run_dir(tmp_path / "run", session_rows)
    rows = load_sessions(run)
    read = comparison_table(rows, summary)
    recomputed = comparison_table(rows, {"seed": 7})
    for table in (read, recomputed):
        for r in table.filter(pl.col("series") != "base").iter_rows(named=True):
            g = summary["gains"][r["series"]]
            assert (r["gain"], r["gain_lo"], r["gain_hi"]) == pytest.approx(
                (g["mean"], *g["ci95"]), abs=1e-12
            )
