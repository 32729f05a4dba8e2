"""A run's report: report.md with a Table-1-style comparison and the plots a person looks at first.

Reads the run directory the fleet writes (session rows as ``sessions.parquet`` or a
``sessions/`` tree of Parquet files, plus ``summary.json``) and writes ``report.md`` and
``report/*.png``:

- per-session AUC over the session index for each method, and its paired gain over base,
  with shift phases shaded (the paper's Figure 4);
- the distribution of per-session AUC per method (Figure 6);
- latency CDFs by component (simulated seconds);
- the comparison table and AUC with and without an active shift.

Every figure function returns the matplotlib `Figure` so tests can count its series before
it is saved. Paired gains are computed per device first (a device's sessions are not
independent), then averaged over devices with a normal-approximation 95% interval.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import cast

import numpy as np
import polars as pl
import pyarrow.dataset as ds
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from duet.method import METHODS
from simulation.paired_stats import paired_gain

# ---------------------------------------------------------------------------------------------
COMPONENTS = ("upload", "generate", "download", "inference", "finetune")
DPI = 110
# ---------------------------------------------------------------------------------------------


def load_sessions(run_dir: Path) -> pl.DataFrame:
    """Session rows of ``run_dir`` with a ``series`` column naming what a plot line shows.

    ``series`` is the method, or dataset/backbone/method when a run mixes several models.

    Raises:
        FileNotFoundError: no ``sessions.parquet`` and no ``sessions/`` directory.
    """
    source = run_dir / "sessions.parquet"
    if not source.exists():
        source = run_dir / "sessions"
    if not source.exists():
        raise FileNotFoundError(f"{run_dir}: no sessions.parquet or sessions/ directory")
    # partitioning=None: directory names such as fleet=3 must not become columns
    rows = pl.from_arrow(ds.dataset(source, format="parquet", partitioning=None).to_table())
    assert isinstance(rows, pl.DataFrame)
    one_model = rows.select("dataset", "backbone").unique().height == 1
    series = (
        pl.col("method")
        if one_model
        else pl.concat_str("dataset", "backbone", "method", separator="/")
    )
    return rows.with_columns(series.alias("series"), pl.col("auc").fill_nan(None))


def series_order(rows: pl.DataFrame) -> list[str]:
    """Series sorted baselines first, DUET last, so colours and table rows read the same way."""
    rank = {m: i for i, m in enumerate(METHODS)}  # baselines first (registration order)
    names = rows["series"].unique().to_list()
    return sorted(names, key=lambda s: (rank.get(s.rsplit("/", 1)[-1], len(rank)), s))


def with_base_auc(rows: pl.DataFrame) -> pl.DataFrame:
    """Non-base rows joined with base's AUC on the same model, device and session."""
    keys = ["dataset", "backbone", "device_id", "session_index"]
    base = rows.filter(pl.col("method") == "base").select(*keys, base_auc="auc")
    return rows.filter(pl.col("method") != "base").join(base, on=keys)


def series_gains(rows: pl.DataFrame, summary: dict) -> list[dict]:
    """Each non-base series' paired AUC gain over base: summary.json's when the run holds
    one model (the same rows, the same statistic), else :func:`paired_gain` on its model."""
    single = rows.select("dataset", "backbone").n_unique() == 1
    out = []
    for (series, method, dataset, backbone), _ in rows.group_by(
        "series", "method", "dataset", "backbone"
    ):
        if method == "base":
            continue
        if single and method in summary.get("gains", {}):
            g = summary["gains"][method]
        else:
            model = rows.filter((pl.col("dataset") == dataset) & (pl.col("backbone") == backbone))
            g = paired_gain(model, str(method), summary.get("seed", 0), "auc")
        out.append(
            {"series": series, "gain": g["mean"], "gain_lo": g["ci95"][0], "gain_hi": g["ci95"][1]}
        )
    return out


def comparison_table(rows: pl.DataFrame, summary: dict | None = None) -> pl.DataFrame:
    """Table 1 style: one row per series, in `series_order`.

    Columns: series, sessions, devices, auc_mean, auc_std (over sessions with a defined AUC),
    gain, gain_lo, gain_hi (paired with base, device-cluster bootstrap 95% interval; null for
    base), latency_p50_s, latency_p99_s, requests_mean, bytes_up_mean, bytes_down_mean,
    fallback_rate. The gains are ``summary``'s (summary.json) for a run of one model; for a
    run of several, each model's are computed by the same function on its own rows.
    """
    per_series = rows.group_by("series").agg(
        sessions=pl.len(),
        devices=pl.col("device_id").n_unique(),
        auc_mean=pl.col("auc").mean(),
        auc_std=pl.col("auc").std(),
        latency_p50_s=pl.col("latency_s").quantile(0.5, "linear"),
        latency_p99_s=pl.col("latency_s").quantile(0.99, "linear"),
        requests_mean=pl.col("requests").mean() if "requests" in rows.columns else pl.lit(0.0),
        bytes_up_mean=pl.col("bytes_up").mean(),
        bytes_down_mean=pl.col("bytes_down").mean(),
        fallback_rate=pl.col("fallback").mean(),
    )
    gains = pl.DataFrame(
        series_gains(rows, summary or {}),
        schema={
            "series": pl.String,
            "gain": pl.Float64,
            "gain_lo": pl.Float64,
            "gain_hi": pl.Float64,
        },
    )
    order = pl.DataFrame({"series": series_order(rows)}).with_row_index("order")
    table = per_series.join(gains, on="series", how="left").join(order, on="series")
    return table.sort("order").drop("order")


def shift_table(rows: pl.DataFrame) -> pl.DataFrame:
    """Mean AUC per series with and without an active shift on the device."""
    return (
        rows.group_by("series")
        .agg(
            auc_no_shift=pl.col("auc").filter(~pl.col("shift_active")).mean(),
            auc_under_shift=pl.col("auc").filter(pl.col("shift_active")).mean(),
            sessions_under_shift=pl.col("shift_active").sum(),
        )
        .join(pl.DataFrame({"series": series_order(rows)}).with_row_index("order"), on="series")
        .sort("order")
        .drop("order")
    )


def series_colors(rows: pl.DataFrame) -> dict[str, str]:
    """One colour per series, the same in every figure."""
    return {name: f"C{i}" for i, name in enumerate(series_order(rows))}


def _shade_shifts(ax: Axes, rows: pl.DataFrame) -> list[Patch]:
    """Shade each session index by the share of devices under a shift there (darker = more).

    Returns the legend entry for the shading (none when the run had no shift)."""
    share = (
        rows.group_by("session_index")
        .agg(
            share=pl.col("shift_active").mean(),
            ops=pl.col("shift").filter(pl.col("shift") != "").unique(),
        )
        .filter(pl.col("share") > 0)
    )
    for k, s, _ in share.iter_rows():
        ax.axvspan(k - 0.5, k + 0.5, color="tab:orange", alpha=0.08 + 0.3 * s, lw=0)
    if not share.height:
        return []
    ops = sorted({op for ops in share["ops"] for op in ops})
    return [Patch(color="tab:orange", alpha=0.3, label="shift: " + ", ".join(ops))]


def auc_over_sessions(rows: pl.DataFrame) -> Figure:
    """Figure 4: mean per-session AUC by session index per method, and paired gain over base."""
    fig = Figure(figsize=(9, 6.5), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    by_k = rows.group_by("series", "session_index").agg(auc=pl.col("auc").mean())
    gain_k = (
        with_base_auc(rows)
        .group_by("series", "session_index")
        .agg(gain=(pl.col("auc") - pl.col("base_auc")).mean())
    )
    for name, color in series_colors(rows).items():
        line = by_k.filter(pl.col("series") == name).sort("session_index")
        top.plot(line["session_index"], line["auc"], "o-", ms=3, color=color, label=name)
        g = gain_k.filter(pl.col("series") == name).sort("session_index")
        if g.height:
            bottom.plot(g["session_index"], g["gain"], "o-", ms=3, color=color, label=name)
    bottom.axhline(0, color="0.4", lw=0.8, ls="--")
    shift_legend = _shade_shifts(top, rows)
    _shade_shifts(bottom, rows)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.set(ylabel="mean session AUC", title="Per-session AUC over the session index")
    bottom.set(xlabel="session index (the device's k-th session)", ylabel="AUC gain over base")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole sessions, no 0.5 ticks
    handles = top.get_legend_handles_labels()[0] + shift_legend
    top.legend(handles=handles, loc="lower left", fontsize=8, ncol=3)
    return fig


def auc_distribution(rows: pl.DataFrame) -> Figure:
    """Figure 6: distribution of per-session AUC per method (violins with median and mean)."""
    fig = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    names = series_order(rows)
    values = [rows.filter(pl.col("series") == n)["auc"].drop_nulls().to_numpy() for n in names]
    parts = ax.violinplot(values, showmedians=True, showextrema=False)
    bodies = cast(list[PolyCollection], parts["bodies"])  # matplotlib's stubs say Collection
    for body, color in zip(bodies, series_colors(rows).values(), strict=True):
        body.set(facecolor=color, alpha=0.6)
    parts["cmedians"].set_color("0.2")
    ax.scatter(
        range(1, len(names) + 1),
        [v.mean() for v in values],
        marker="D",
        color="k",
        s=18,
        zorder=3,
        label="mean",
    )
    ax.set_xticks(range(1, len(names) + 1), names, rotation=15)
    ax.set(ylabel="session AUC", title="Distribution of per-session AUC")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def latency_cdfs(rows: pl.DataFrame) -> Figure:
    """Empirical CDFs of each latency component and of the whole session, per method.

    A component a method does not use (zero seconds) is left out of its CDF. All panels
    share one log time axis, so components compare at a glance.
    """
    fig = Figure(figsize=(12, 6.5), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, 3, sharex=True, sharey=True).ravel()
    columns = [f"{c}_s" for c in COMPONENTS] + ["latency_s"]
    for ax, column in zip(axes, columns, strict=True):
        for name, color in series_colors(rows).items():
            seconds = rows.filter((pl.col("series") == name) & (pl.col(column) > 0))[column]
            if seconds.len():
                x = np.sort(seconds.to_numpy())
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", color=color, label=name)
        title = "end to end" if column == "latency_s" else column.removesuffix("_s")
        ax.set(title=title, xscale="log", xlabel="simulated seconds")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of sessions")
    axes[3].set_ylabel("fraction of sessions")
    axes[-1].legend(loc="lower right", fontsize=8)
    return fig


FIGURES = {  # file stem -> (figure function, section title, caption)
    "auc_over_sessions": (
        auc_over_sessions,
        "Per-session AUC (Figure 4)",
        "Mean per-session AUC over the session index (top) and the paired gain over base on "
        "the same devices and sessions (bottom). Orange: sessions during which a shift "
        "operator was active, darker where it hit more devices.",
    ),
    "auc_distribution": (
        auc_distribution,
        "AUC distribution (Figure 6)",
        "Distribution of per-session AUC per method; bar: median, diamond: mean.",
    ),
    "latency_cdfs": (
        latency_cdfs,
        "Latency by component",
        "Latency CDFs by component, simulated seconds, log scale; a component a method does "
        "not use is omitted.",
    ),
}


def _fmt(value: float | None, spec: str) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def markdown_tables(rows: pl.DataFrame, summary: dict | None = None) -> str:
    """The comparison and shift tables as Markdown."""
    lines = [
        "| method | sessions | devices | AUC mean ± std | gain vs base [95% CI] "
        "| latency p50 / p99 (s) | requests / session | KB up / session | KB down / session "
        "| fallbacks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in comparison_table(rows, summary).iter_rows(named=True):
        gain = (
            "–"
            if r["gain"] is None
            else f"{r['gain']:+.4f} [{_fmt(r['gain_lo'], '+.4f')}, {_fmt(r['gain_hi'], '+.4f')}]"
        )
        lines.append(
            f"| {r['series']} | {r['sessions']} | {r['devices']} "
            f"| {_fmt(r['auc_mean'], '.4f')} ± {_fmt(r['auc_std'], '.4f')} | {gain} "
            f"| {r['latency_p50_s']:.3f} / {r['latency_p99_s']:.3f} | {r['requests_mean']:.2f} "
            f"| {r['bytes_up_mean'] / 1e3:.2f} | {r['bytes_down_mean'] / 1e3:.1f} "
            f"| {r['fallback_rate']:.1%} |"
        )
    lines += [
        "",
        "| method | AUC, no shift | AUC, under shift | sessions under shift |",
        "|---|---:|---:|---:|",
    ]
    for r in shift_table(rows).iter_rows(named=True):
        lines.append(
            f"| {r['series']} | {_fmt(r['auc_no_shift'], '.4f')} "
            f"| {_fmt(r['auc_under_shift'], '.4f')} | {r['sessions_under_shift']} |"
        )
    return "\n".join(lines)


def policy_table(summary: dict) -> str:
    """summary.json's ``request_policies`` as Markdown: per generated method, its policy,
    what it asked for and what it kept of its ``always`` reference's gain."""
    policies = summary.get("request_policies", {})
    metric = summary.get("metric", "auc")
    lines = [
        f"| method | policy | requests / session | share of always's requests "
        f"| KB up / down per session | {metric} | gain vs base [95% CI] "
        "| gain vs always [95% CI] | share of always's gain kept | decisions |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def gain(g: dict | None) -> str:
        if not g:
            return "–"
        lo, hi = g["ci95"]
        return f"{_fmt(g['mean'], '+.4f')} [{_fmt(lo, '+.4f')}, {_fmt(hi, '+.4f')}]"

    for name, p in policies.items():
        decisions = ", ".join(f"{k} {v}" for k, v in p["decisions"].items())
        lines.append(
            f"| {name} | {p['policy']} | {p['requests_per_session']:.2f} "
            f"| {_fmt(p.get('request_fraction'), '.0%')} "
            f"| {p['kb_up_per_session']:.2f} / {p['kb_down_per_session']:.1f} "
            f"| {_fmt(p[f'{metric}_mean'], '.4f')} | {gain(p['gain_vs_base'])} "
            f"| {gain(p.get('gain_vs_reference'))} | {_fmt(p.get('gain_kept'), '.0%')} "
            f"| {decisions} |"
        )
    return "\n".join(lines)


def policy_pareto(summary: dict) -> Figure:
    """Requests per session against the paired gain over base, one point per (method,
    policy) with its 95% interval: the points up and to the left beat ``always``."""
    fig = Figure(figsize=(7, 4.5), dpi=DPI)
    ax = fig.subplots()
    policies = summary.get("request_policies", {})
    metric = summary.get("metric", "auc")
    for name, p in policies.items():
        g = p["gain_vs_base"]
        x, y = p["requests_per_session"], g["mean"]
        ax.errorbar(
            x, y, yerr=[[y - g["ci95"][0]], [g["ci95"][1] - y]], fmt="o", capsize=3, label=name
        )
        ax.annotate(p["policy"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7)
    ax.axhline(0.0, color="gray", lw=0.8, ls="--")  # base
    ax.set_xlabel("parameter requests per session")
    ax.set_ylabel(f"{metric} gain over base (paired)")
    ax.set_title("Request policies: communication vs gain")
    if policies:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _header(run_dir: Path, rows: pl.DataFrame) -> str:
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    first = rows.row(0, named=True)
    run_id = summary.get("run_id", first["run_id"])
    models = ", ".join(
        sorted({f"{d}/{b}" for d, b in rows.select("dataset", "backbone").iter_rows()})
    )
    shifts = sorted({op for s in rows["shift"].unique() if s for op in s.split("+")})
    return (
        f"# Run {run_id}: scenario {first['scenario']}\n\n"
        f"{rows.height} session rows: {rows['device_id'].n_unique()} devices, "
        f"{rows['session_index'].n_unique()} sessions each at most, methods "
        f"{', '.join(series_order(rows))}; model {models}; shift operators: "
        f"{', '.join(shifts) or 'none'}. AUC is per session (sessions whose AUC is undefined "
        f"are left out of AUC columns); latencies are simulated seconds; gains are paired with "
        f"base on the same device and session, pooled over pairs, with a device-cluster "
        f"bootstrap 95% interval (summary.json's `gains`)."
    )


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.md`` and ``run_dir/report/*.png``; returns the Markdown path."""
    rows = load_sessions(run_dir)
    if rows.is_empty():
        raise ValueError(f"{run_dir}: the session rows are empty; nothing to report")
    images = run_dir / "report"
    images.mkdir(exist_ok=True)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    sections = [
        _header(run_dir, rows),
        "## Comparison (Table 1 style)",
        markdown_tables(rows, summary),
    ]
    for stem, (make, title, caption) in FIGURES.items():
        make(rows).savefig(images / f"{stem}.png")
        sections += [f"## {title}", f"![{stem}](report/{stem}.png)", caption]
    if len(summary.get("request_policies", {})) > 1:  # a trade-off needs two points
        policy_pareto(summary).savefig(images / "request_policies.png")
        sections += [
            "## Request policies: requests against gain",
            policy_table(summary),
            "![request_policies](report/request_policies.png)",
            "Each point is one generated method under its request policy: parameter requests "
            "per session against its paired gain over base (device-cluster bootstrap 95% "
            "interval). The share kept is its gain over base divided by that of the same "
            "model under `always` (summary.json's `request_policies`).",
        ]
    out = run_dir / "report.md"
    out.write_text("\n\n".join(sections) + "\n")
    return out
