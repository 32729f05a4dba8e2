"""``summary.json`` of a run: session accounting, per-method AUC and latency, paired AUC gains
over ``base`` with 95% intervals, and per-shift-phase means (the paper's Figure 4 effect).

Gains are paired: the same device, the same session, two methods. Sessions of one device are
not independent (same user, same profile), so intervals come from a cluster bootstrap that
resamples devices, not sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from simulation.paired_stats import KEY as PAIR_KEY
from simulation.paired_stats import cluster_bootstrap, paired_differences, paired_gain

KEY = list(PAIR_KEY)


def summarize(
    rows: pl.DataFrame,
    devices: pl.DataFrame,
    expected: Mapping[str, int],
    shifts: Sequence[Mapping[str, Any]],
    seed: int = 0,
    metric: str = "auc",
    references: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything ``summary.json`` holds, from the session rows and the device table.

    Args:
        rows (pl.DataFrame): the run's session rows (actors/storage/sink.py schema).
        devices (pl.DataFrame): ``device_id`` and ``shifts`` (list of shift indices).
        expected (Mapping[str, int]): sessions each method should have written.
        shifts (Sequence[Mapping]): the scenario's shifts (``operator``, ``at_session``,
            ``until_session``), indexed like ``devices.shifts``.
        seed (int): bootstrap seed.
        metric (str): what gains and phases compare: ``auc`` (clicks), or ``accuracy``
            for videos, whose sessions often hold one class and so have no AUC.
        references (Mapping[str, str] | None): generated name -> the name that runs the same
            model under ``always``, what its request policy is compared with.
    """
    methods = list(expected)
    return {
        "metric": metric,
        "seed": seed,
        "accounting": accounting(rows, expected),
        "methods": {m: method_stats(rows.filter(pl.col("method") == m)) for m in methods},
        "gains": {m: paired_gain(rows, m, seed, metric) for m in methods if m != "base"},
        "by_session_index": by_session_index(rows, methods, metric),
        "shifts": [
            shift_phases(rows, devices, i, spec, methods, seed, metric)
            for i, spec in enumerate(shifts)
        ],
        "latency_comparison": latency_comparison(rows),
        "request_policies": request_policies(rows, references or {}, seed, metric),
    }


def accounting(rows: pl.DataFrame, expected: Mapping[str, int]) -> dict[str, Any]:
    """Expected vs written rows per method, and duplicated (device, session, method) keys."""
    written = dict(rows.group_by("method").len().iter_rows())
    duplicates = rows.height - rows.select(*KEY, "method").unique().height
    per = {m: {"expected": int(n), "written": int(written.get(m, 0))} for m, n in expected.items()}
    complete = duplicates == 0 and all(v["expected"] == v["written"] for v in per.values())
    return {"methods": per, "duplicates": duplicates, "complete": complete}


def _percentiles(values: pl.Series) -> dict[str, float]:
    v = values.drop_nulls().to_numpy()
    if len(v) == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(v.mean())}


def method_stats(rows: pl.DataFrame) -> dict[str, Any]:
    components = ("upload_s", "generate_s", "download_s", "inference_s", "finetune_s")
    return {
        "sessions": rows.height,
        **_mean_std(rows, "auc"),
        **_mean_std(rows, "accuracy"),
        "logloss_mean": _mean(rows["logloss"]),
        "fallback": int(rows["fallback"].sum()),
        "latency_s": _percentiles(rows["latency_s"]),
        "components_mean_s": {c: _mean(rows[c]) for c in components},
        "bytes_up_mean": _mean(rows["bytes_up"]),
        "bytes_down_mean": _mean(rows["bytes_down"]),
        # parameter sets asked for per session: 1 (session conditioning), one per scored
        # impression (history conditioning), 0 (base, fine-tuning): the communication side
        # of the accuracy trade-off between the two conditioning modes
        "requests_total": int(rows["requests"].sum()) if "requests" in rows.columns else 0,
        "requests_mean": _mean(rows["requests"]) if "requests" in rows.columns else 0.0,
    }


def _mean_std(rows: pl.DataFrame, metric: str) -> dict[str, Any]:
    """Mean, std and count over the sessions where ``metric`` is defined (not NaN)."""
    v = rows[metric].fill_nan(None).drop_nulls().to_numpy()
    return {
        f"{metric}_mean": float(v.mean()) if len(v) else float("nan"),
        f"{metric}_std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        f"{metric}_sessions": len(v),
    }


def _mean(values: pl.Series) -> float:
    return float(values.mean()) if len(values) else float("nan")  # type: ignore[arg-type]


def by_session_index(
    rows: pl.DataFrame, methods: Sequence[str], metric: str = "auc"
) -> dict[str, list[float]]:
    """Mean ``metric`` per session index (the x axis of the paper's Figure 4), per method."""
    if rows.height == 0:
        return {m: [] for m in methods}
    top = int(rows["session_index"].to_numpy().max()) + 1
    table = (
        rows.with_columns(pl.col(metric).fill_nan(None))
        .group_by("method", "session_index")
        .agg(pl.col(metric).mean())
    )
    out = {m: [float("nan")] * top for m in methods}
    for method, k, value in table.iter_rows():
        if method in out:
            out[method][k] = float("nan") if value is None else float(value)
    return out


def shift_phases(
    rows: pl.DataFrame,
    devices: pl.DataFrame,
    index: int,
    spec: Mapping[str, Any],
    methods: Sequence[str],
    seed: int,
    metric: str = "auc",
) -> dict[str, Any]:
    """Per-method mean ``metric`` and paired gains before, during and after one shift, for
    the shifted group and for the devices outside it (the control)."""
    at, until = spec["at_session"], spec.get("until_session")
    group = devices.filter(pl.col("shifts").list.contains(index))["device_id"]
    k = pl.col("session_index")
    phases = {"before": k < at, "during": (k >= at) if until is None else (k >= at) & (k < until)}
    if until is not None:
        phases["after"] = k >= until
    member = pl.col("device_id").is_in(group.implode())

    def summary(where: pl.Expr, label: str) -> dict[str, Any]:
        part = rows.filter(where)
        return {
            "sessions": part.filter(pl.col("method") == "base").height,
            metric: {
                m: _mean(part.filter(pl.col("method") == m)[metric].fill_nan(None).drop_nulls())
                for m in methods
            },
            "gain": {
                m: cluster_bootstrap(
                    paired_differences(part, m, metric), seed, f"shift{index}/{label}/{m}/{metric}"
                )
                for m in methods
                if m != "base"
            },
        }

    return {
        "operator": spec["operator"],
        "at_session": at,
        "until_session": until,
        "devices": len(group),
        "shifted": {
            name: summary(cond & member, f"shifted/{name}") for name, cond in phases.items()
        },
        "control": {
            name: summary(cond & ~member, f"control/{name}") for name, cond in phases.items()
        },
    }


def latency_comparison(rows: pl.DataFrame) -> dict[str, Any]:
    """Per-session adaptation cost: fine-tuning on device vs asking the generator (the paper's
    60,000 ms vs 0.34 ms claim), as measured in this run."""
    out: dict[str, Any] = {}
    ft = rows.filter(pl.col("finetune_s") > 0)
    if ft.height:
        out["finetune_s"] = _percentiles(ft["finetune_s"])
    asked = rows.filter(pl.col("requests") > 0) if "requests" in rows.columns else rows.clear()
    for method in sorted(asked["method"].unique()):  # the methods that asked the generator
        gen = rows.filter((pl.col("method") == method) & ~pl.col("fallback"))
        if gen.height:
            out[method] = {
                "generate_s": _percentiles(gen["generate_s"]),
                "generate_server_s": _percentiles(gen["generate_server_s"]),
                "upload_plus_download_s": _percentiles(gen["upload_s"] + gen["download_s"]),
            }
    return out


def request_policies(
    rows: pl.DataFrame, references: Mapping[str, str], seed: int, metric: str = "auc"
) -> dict[str, Any]:
    """The communication-vs-accuracy trade-off of each generated name's request policy:
    requests and bytes per session, the decisions it took, its paired gain over base and over
    its ``always`` reference, the share of the reference's requests it made and the share of
    its gain it kept (IntellectReq's question: most of the gain for few of the requests?)."""
    out: dict[str, Any] = {}
    for name, reference in references.items():
        mine = rows.filter(pl.col("method") == name)
        if mine.height == 0:
            continue
        over_base = paired_gain(rows, name, seed, metric)
        entry: dict[str, Any] = {
            "policy": mine["policy"][0],
            "reference": reference,
            "sessions": mine.height,
            "requests_per_session": _mean(mine["requests"]),
            "kb_up_per_session": _mean(mine["bytes_up"]) / 1e3,
            "kb_down_per_session": _mean(mine["bytes_down"]) / 1e3,
            "decisions": dict(sorted(mine.group_by("decision").len().iter_rows())),
            f"{metric}_mean": _mean(mine[metric].fill_nan(None).drop_nulls()),
            "gain_vs_base": over_base,
        }
        if reference != name:
            ref = rows.filter(pl.col("method") == reference)
            ref_gain = paired_gain(rows, reference, seed, metric)["mean"]
            ref_requests = _mean(ref["requests"])
            entry["gain_vs_reference"] = paired_gain(rows, name, seed, metric, base=reference)
            entry["request_fraction"] = (
                entry["requests_per_session"] / ref_requests if ref_requests else float("nan")
            )
            # a share of a gain only means something when the reference gains
            entry["gain_kept"] = over_base["mean"] / ref_gain if ref_gain > 0 else float("nan")
        out[name] = entry
    return out
