"""The fleet runs' sections of docs/results.md (:mod:`benchmarks.paper.fleet_runs`):
Figure 4's curves and gains per shift phase, the conditioning comparison, and the request
policies' requests against their gains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.paper.cells import read_json

COMMAND = ".venv/bin/python -m benchmarks.paper"  # as the docs quote it, for a pending run
POLICIES = "ml100k-request-policies"


def pending(run: str) -> list[str]:
    """The line a run not made yet renders: the command that makes it."""
    return [f"pending: `{COMMAND} fleet {run}`."]


FIGURE_TITLES = {
    "ml100k-genre-shift": "ML-100K, DIN: genre shift from session 1",
    "ckplus-figure4": "CK+48 112x112x3, MobileNetV3-Large: another subject from session 1",
}


def figure4_md(results: Path, name: str, plot: Path | None = None) -> list[str]:
    """One Figure 4 run as tables (the mean metric per replayed session for the shifted
    devices and the control, gains per shift phase with their 95% intervals) and, when
    ``plot`` is given, the two panels as a PNG next to the doc."""
    d = read_json(results / "fleet" / f"{name}.json")
    if d is None:
        return pending(name)
    metric = d.get("metric", "auc")
    groups: dict[str, dict[str, list[float]]] = d.get("by_group") or {"all": d["by_session_index"]}
    methods = list(next(iter(groups.values())))
    lines = [
        f"Mean session {metric} by replayed session index (the shift starts at session 1):",
        "",
        "| group | session index | " + " | ".join(methods) + " |",
        "|---|---:|" + "---:|" * len(methods),
    ]
    for group, curves in groups.items():
        for k in range(max(len(v) for v in curves.values())):
            lines.append(
                f"| {group} | {k} | " + " | ".join(f"{curves[m][k]:.4f}" for m in methods) + " |"
            )
    lines += [
        "",
        f"Paired {metric} gains over base (device-cluster bootstrap 95% interval), "
        "shifted devices vs the unshifted control:",
        "",
        "| shift | group | phase | sessions | "
        + " | ".join(f"{m} − base" for m in methods if m != "base")
        + " |",
        "|---|---|---|---:|" + "---:|" * (len(methods) - 1),
    ]
    for shift in d.get("shifts", []):
        for group in ("shifted", "control"):
            for phase, part in shift[group].items():
                gains = [part["gain"][m] for m in methods if m != "base"]
                cells = [
                    f"{g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]"
                    if g.get("pairs")
                    else "—"
                    for g in gains
                ]
                lines.append(
                    f"| {shift['operator']} @ {shift['at_session']} | {group} | "
                    f"{phase} | {part['sessions']} | " + " | ".join(cells) + " |"
                )
    if plot is not None:
        _plot_figure4(groups, metric, FIGURE_TITLES.get(name, name), plot)
        lines += ["", f"![Figure 4: {name}]({plot.name})"]
    return lines + ["", f"Command: `{d['command']}`"]


def _plot_figure4(
    groups: dict[str, dict[str, list[float]]], metric: str, title: str, out: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(groups), figsize=(4.2 * len(groups), 3.2), sharey=True, squeeze=False
    )
    for ax, (group, curves) in zip(axes[0], groups.items(), strict=True):
        for method, values in curves.items():
            ax.plot(range(len(values)), values, marker="o", label=method)
        ax.axvline(0.5, color="grey", linestyle=":", label="shift")
        ax.set(xlabel="replayed session index", title=f"{group} devices")
        ax.set_xticks(range(max(len(v) for v in curves.values())))  # whole sessions only
    axes[0][0].set_ylabel(f"mean session {metric}")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def conditioning_md(results: Path) -> list[str]:
    """The conditioning fleet run: AUC and its gain over base beside what each method costs
    in generator requests and bytes per session."""
    d = read_json(results / "fleet" / "ml100k-conditioning.json")
    if d is None:
        return pending("ml100k-conditioning")
    lines = [
        "| method | sessions | session AUC | gain vs base [95% CI] | requests / session | "
        "KB up / session | KB down / session |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, m in d["methods"].items():
        g = d["gains"].get(method)
        gain = "—" if g is None else f"{g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]"
        lines.append(
            f"| {method} | {m['sessions']} | {m['auc_mean']:.4f} | {gain} | "
            f"{m.get('requests_mean', 0):.2f} | {m['bytes_up_mean'] / 1e3:.2f} | "
            f"{m['bytes_down_mean'] / 1e3:.2f} |"
        )
    return lines + ["", f"Command: `{d['command']}`"]


def policies_md(results: Path, plot: Path | None = None) -> list[str]:
    """The request-policies fleet run: base before and after the shift on the shifted
    devices and the control, each (method, policy)'s requests against its gain with 95%
    intervals, the learned gate's size, and the issue's question answered from the numbers:
    does some policy keep at least 95% of ``always``'s gain with at most half its requests?"""
    d = read_json(results / "fleet" / f"{POLICIES}.json")
    if d is None:
        return pending(POLICIES)
    metric = d.get("metric", "auc")
    shift = d["shifts"][0]
    lines = [
        f"The shift (from session {shift['at_session']}), base's mean session {metric}:",
        "",
        "| group | before | during | change |",
        "|---|---:|---:|---:|",
    ]
    for group in ("shifted", "control"):
        before, during = (shift[group][p][metric]["base"] for p in ("before", "during"))
        lines.append(f"| {group} | {before:.4f} | {during:.4f} | {during - before:+.4f} |")
    lines += ["", *_policy_table(d["request_policies"], shift, metric)]
    lines += ["", _policy_answer(d["request_policies"])]
    for key, gate in d.get("request_gates", {}).items():
        lines.append(
            f"Gate {key}: {gate['parameters']} parameters, {gate['flops_per_decision']} FLOPs "
            f"per decision, fitted on {gate['training_pairs']} training pairs (fresh better in "
            f"{gate['fresh_better_rate']:.0%}, {gate['training_accuracy']:.0%} of them "
            "classified right)."
        )
    if plot is not None:
        from simulation.report import policy_pareto

        policy_pareto(d).savefig(plot)
        lines += ["", f"![requests against gain]({plot.name})"]
    return lines + ["", f"Command: `{d['command']}`"]


def _policy_table(
    policies: dict[str, dict[str, Any]], shift: dict[str, Any], metric: str
) -> list[str]:
    """Each (method, policy)'s requests and bytes against its gains, overall and on the
    shifted devices before and during the shift."""
    lines = [
        f"| method | policy | requests / session | share of always's requests | KB down / "
        f"session | {metric} | gain vs base [95% CI] | gain vs always [95% CI] | share of "
        "always's gain kept | gain vs base, shifted phones, before / during the shift |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m, p in policies.items():
        share, k = p.get("request_fraction"), _kept(policies, m)
        phases = " / ".join(
            f"{shift['shifted'][phase]['gain'][m]['mean']:+.4f}" for phase in ("before", "during")
        )
        lines.append(
            f"| {m} | {p['policy']} | {p['requests_per_session']:.2f} | "
            f"{'—' if share is None else f'{share:.0%}'} | {p['kb_down_per_session']:.1f} | "
            f"{p[f'{metric}_mean']:.4f} | {_interval(p['gain_vs_base'])} | "
            f"{_interval(p.get('gain_vs_reference'))} | {'—' if k is None else f'{k:.0%}'} | "
            f"{phases} |"
        )
    return lines


def _policy_answer(policies: dict[str, dict[str, Any]]) -> str:
    """The issue's question: which policies keep 95% of the gain on half the requests."""
    winners = []
    for m, p in policies.items():
        k = _kept(policies, m)
        if k is not None and k >= 0.95 and p.get("request_fraction", 1.0) <= 0.5:
            winners.append(m)
    answer = (
        f"yes: {', '.join(winners)}"
        if winners
        else "no: no policy with at most half the requests keeps 95% of a positive gain"
    )
    return f"At most half the requests and at least 95% of the gain: {answer}."


def _kept(policies: dict[str, dict[str, Any]], method: str) -> float | None:
    """The share of its reference's gain that ``method`` keeps; only for a reference other
    than itself that gains."""
    p = policies[method]
    ref = policies[p["reference"]]["gain_vs_base"]["mean"]
    return p["gain_vs_base"]["mean"] / ref if p["reference"] != method and ref > 0 else None


def _interval(g: dict[str, Any] | None) -> str:
    if not g or not g.get("pairs"):
        return "—"
    return f"{g['mean']:+.4f} [{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]"
