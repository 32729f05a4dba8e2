"""Paired statistics: one implementation for summary.json, the report and the benchmarks.

A gain is paired: the same device and session, a method and base. A device's sessions are
not independent (same user, same profile), so the 95% interval resamples devices, not
sessions (a cluster bootstrap), and the point estimate is the pooled mean over all pairs.
Each interval draws from a random stream keyed by the run's seed and what it measures, so
the report, which recomputes a gain for one backbone's rows, gets the summary's numbers
when the rows are the same.

Across training seeds (docs/results.md's claim tables) the pairs are seeds and the test is
Student's paired t.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

BOOTSTRAP_SAMPLES = 1000
KEY = ("device_id", "session_index")  # a session of the fleet: its pairs share these
# Two-sided 95% quantiles of Student's t by degrees of freedom (paired seeds - 1): a
# five-seed table needs no statistics package.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def paired_differences(
    rows: pl.DataFrame, method: str, metric: str = "auc", base: str = "base"
) -> pl.DataFrame:
    """``device_id, diff``: ``metric`` of ``method`` minus ``base`` on every session both
    scored (NaN metrics, e.g. a one-class session's AUC, drop the pair)."""

    def side(m: str, name: str) -> pl.DataFrame:
        return rows.filter(pl.col("method") == m).select(
            *KEY, pl.col(metric).fill_nan(None).alias(name)
        )

    joined = side(method, "x").join(side(base, "y"), on=list(KEY)).drop_nulls()
    return joined.select("device_id", diff=pl.col("x") - pl.col("y"))


def cluster_bootstrap(pairs: pl.DataFrame, seed: int, label: str) -> dict[str, Any]:
    """Mean paired difference and its 95% interval from resampling devices with
    replacement; ``label`` (what is measured) keys the random stream with ``seed``."""
    if pairs.height == 0:
        return {"pairs": 0, "devices": 0, "mean": float("nan"), "ci95": [float("nan")] * 2}
    rng = np.random.default_rng([seed, zlib.crc32(label.encode())])
    # sorted: group_by has no order, and the draws must meet the devices in the same order
    per_device = (
        pairs.group_by("device_id").agg(s=pl.col("diff").sum(), n=pl.len()).sort("device_id")
    )
    sums, counts = per_device["s"].to_numpy(), per_device["n"].to_numpy().astype(np.float64)
    D = len(sums)
    draws = rng.multinomial(D, np.full(D, 1.0 / D), size=BOOTSTRAP_SAMPLES)  # (B, D) counts
    means = (draws @ sums) / (draws @ counts)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "pairs": pairs.height,
        "devices": D,
        "mean": float(sums.sum() / counts.sum()),
        "ci95": [float(low), float(high)],
        "interval": "device-cluster bootstrap",
    }


def paired_gain(
    rows: pl.DataFrame,
    method: str,
    seed: int = 0,
    metric: str = "auc",
    label: str = "",
    base: str = "base",
) -> dict[str, Any]:
    """``method`` minus ``base`` over ``rows``, with its device-cluster bootstrap interval."""
    pairs = paired_differences(rows, method, metric, base)
    vs = "" if base == "base" else f"/vs-{base}"  # base's streams stay those of older runs
    return {
        "vs": base,
        "metric": metric,
        **cluster_bootstrap(pairs, seed, f"{label}/{method}/{metric}{vs}"),
    }


def paired_t(gains: Sequence[float]) -> tuple[float, float] | None:
    """(t statistic, its two-sided 95% bound) of paired differences over seeds, or None
    when there are too few, or too many for the table, or no spread."""
    n = len(gains)
    if n < 2 or n - 1 not in T_975 or statistics.stdev(gains) == 0:
        return None
    return statistics.mean(gains) / (statistics.stdev(gains) / math.sqrt(n)), T_975[n - 1]
