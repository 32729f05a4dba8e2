"""The tables of docs/results.md drawn from the cached training cells: Tables 1, 2 and 4
with the paper's values and relative gains beside ours, the ranking metrics, the authors'
code beside ours, the CK+ input sizes and the training throughput."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import cell_name, data_folder, load_cells, seeds_of, variant_name
from benchmarks.paper.floor import load_floor
from benchmarks.paper.grids import (
    CLICK_BACKBONES,
    CLICK_METHODS,
    IMAGE_BACKBONES,
    IMAGE_PROTOCOLS,
    NP_SWEEP,
    TABLE2_DUET,
)
from benchmarks.paper.values import (
    TABLE1_DELAY_MS,
    TABLE1_ML100K,
    TABLE1_ML100K_COST,
    TABLE2,
    TABLE2_COST,
    THEIRS_CODE,
    paper_row,
    rel_gain,
)


def mean_std(values: Sequence[float]) -> str:
    """Mean ± std over seeds; one seed says so, since it has no spread to show."""
    if not values:
        return "pending"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _gain(ours: list[float], base: list[float]) -> str:
    if not ours or not base:
        return "pending"
    return f"{rel_gain(statistics.mean(ours), statistics.mean(base)):+.2f}%"


def _mean(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.4f}" if values else "—"


def paper_value(
    values: dict[tuple[str, str], tuple[float, float]],
    backbone: str,
    variant: str,
    scale: float = 1.0,
) -> str:
    """The paper's "mean ± std" for a row, or a dash where the paper has no such row."""
    variant = paper_row(variant)
    if (backbone, variant) not in values:
        return "— (not in the paper)"
    mean, std = values[(backbone, variant)]
    return f"{mean * scale:.4f} ± {std * scale:.4f}"


def paper_gain(
    values: dict[tuple[str, str], tuple[float, float]], backbone: str, variant: str
) -> str:
    """The paper's relative gain of a row over its base row, in percent."""
    variant = paper_row(variant)
    if variant == "base":
        return "—"
    if (backbone, variant) not in values:
        return "— (not in the paper)"
    return f"{rel_gain(values[(backbone, variant)][0], values[(backbone, 'base')][0]):+.2f}%"


def table1_md(cells: dict[str, dict[str, Any]], seeds: Sequence[int]) -> list[str]:
    """Table 1 with the paper's AUC, relative gain, sizes and delays beside ours."""
    lines = [
        "| backbone | method | AUC mean ± std | val AUC | seeds done | rel. gain vs base | "
        "paper AUC (ML-100K) | paper rel. gain | Param. (device) / paper | FLOPs / paper | "
        "time delay (ms) / paper |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backbone in CLICK_BACKBONES:
        base = [c["auc"] for c in seeds_of(cells, backbone, "base", seeds)]
        paper_params, paper_flops = TABLE1_ML100K_COST[backbone]
        for method in CLICK_METHODS:
            rows = seeds_of(cells, backbone, method, seeds)
            aucs = [c["auc"] for c in rows]
            val = [c["val_auc"] for c in rows if "val_auc" in c]
            first = rows[0] if rows else {}
            gain = "—" if method == "base" else _gain(aucs, base)
            delay = f"{statistics.median(c['latency_ms'] for c in rows):.2f}" if rows else "pending"
            paper_delay = TABLE1_DELAY_MS.get(paper_row(method))
            paper_delay_text = "—" if paper_delay is None else f"≥ {paper_delay:g}"
            lines.append(
                f"| {backbone} | {method} | {mean_std(aucs)} | {_mean(val)} | "
                f"{len(rows)}/{len(seeds)} | {gain} | "
                f"{paper_value(TABLE1_ML100K, backbone, method)} | "
                f"{paper_gain(TABLE1_ML100K, backbone, method)} | "
                f"{first.get('params', 'pending')} / {paper_params:,} | "
                f"{first.get('flops', 'pending')} / {paper_flops:,} | "
                f"{delay} / {paper_delay_text} |"
            )
    return lines


RANKING_COLUMNS = ("ndcg@10", "hr@10", "full_ndcg@10", "full_hr@10", "full_ndcg@20", "full_hr@20")


def ranking_md(cells: dict[str, dict[str, Any]], seeds: Sequence[int]) -> list[str]:
    """Table 1's ranking metrics, mean over seeds: sampled (the positive among its 100
    negatives) beside full ranking (among every item the user never interacted with)."""
    lines = [
        "| backbone | method | " + " | ".join(RANKING_COLUMNS) + " | seeds |",
        "|---|---|" + "---:|" * (len(RANKING_COLUMNS) + 1),
    ]
    for backbone in CLICK_BACKBONES:
        for method in CLICK_METHODS:
            rows = seeds_of(cells, backbone, method, seeds)
            values = [_mean([c[k] for c in rows if k in c]) for k in RANKING_COLUMNS]
            lines.append(f"| {backbone} | {method} | " + " | ".join(values) + f" | {len(rows)} |")
    return lines


# our Table 1 rows beside their two models: their sasrec is a base model, their meta_sasrec
# a DUET without SWA conditioned on each impression's history
THEIRS_ROWS = (
    ("sasrec", "base"),
    ("meta_sasrec", "duet-no-swa-history"),
    ("meta_sasrec", "duet-history"),
    ("meta_sasrec", "duet-no-swa"),
)


def theirs_md(tables: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Their code and ours on identical samples (seed 0, 2 epochs): test AUC, user AUC,
    training throughput and peak memory, per data folder."""
    lines = [
        "| data | their model | their test AUC / user AUC | our method (SASRec, seed 0) | "
        "our test AUC / user AUC | their / our train rows/s | their / our peak RSS "
        "(training and evaluation) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for folder, cells in tables.items():
        for theirs, ours in THEIRS_ROWS:
            auc, user_auc, rate, rss = THEIRS_CODE[folder][theirs]
            c = cells.get(cell_name("sasrec", ours))
            mine = "pending" if c is None else f"{c['auc']:.4f} / {c['user_auc']:.4f}"
            our_rate = "—" if c is None else f"{c['train_samples_per_s']:,.0f}"
            our_rss = (
                "—"
                if c is None or "peak_rss_bytes" not in c
                else (f"{c['peak_rss_bytes'] / 1e9:.2f} GB")
            )
            lines.append(
                f"| {folder} | {theirs} | {auc:.4f} / {user_auc:.4f} | {ours} | {mine} | "
                f"{rate:,.0f} / {our_rate} | {rss / 1e9:.2f} GB / {our_rss} |"
            )
    return lines


# Table 2's and Table 4's rows: (method, N_p as the paper prints it, our variant)
TABLE2_VARIANTS = (
    ("base", "—", "base"),
    ("duet-no-swa", "1", "duet-no-swa"),
    *(("duet", str(n), variant_name("duet", n)) for n in NP_SWEEP),
)


def table2_md(
    cells: dict[str, dict[str, Any]], seeds: Sequence[int], ridge: dict[str, Any] | None
) -> list[str]:
    """Table 2 (and the N_p rows of Table 4) with the paper's accuracy and relative gain
    beside ours, and the linear floor as its own row."""
    lines = [
        "| backbone | method | N_p | accuracy mean ± std | val accuracy | seeds done | "
        "rel. gain vs base | paper accuracy | paper rel. gain | Param. (device) / paper | "
        "FLOPs / paper |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backbone in IMAGE_BACKBONES:
        base = [c["accuracy"] for c in seeds_of(cells, backbone, "base", seeds)]
        paper_params, paper_flops = TABLE2_COST[backbone]
        for method, n, variant in TABLE2_VARIANTS:
            rows = seeds_of(cells, backbone, variant, seeds)
            acc = [c["accuracy"] for c in rows]
            val = [c["val_accuracy"] for c in rows if "val_accuracy" in c]
            first = rows[0] if rows else {}
            gain = "—" if variant == "base" else _gain(acc, base)
            lines.append(
                f"| {backbone} | {method} | {n} | {mean_std(acc)} | "
                f"{_mean(val)} | "
                f"{len(rows)}/{len(seeds)} | {gain} | "
                f"{paper_value(TABLE2, backbone, variant, 0.01)} | "
                f"{paper_gain(TABLE2, backbone, variant)} | "
                f"{first.get('params', 'pending')} / {paper_params:,} | "
                f"{first.get('flops', 'pending')} / {paper_flops:,} |"
            )
    if ridge is not None:
        lines.append(
            f"| raw pixels | linear floor: ridge, λ {ridge['lambda']:g} (chosen on val) | "
            f"— | {ridge['accuracy']:.4f} | {ridge['val_accuracy']:.4f} | — | — | "
            "— (not in the paper) | — | — | — |"
        )
    return lines


def table4_md(cells: dict[str, dict[str, Any]], seeds: Sequence[int]) -> list[str]:
    """Table 4 as the paper prints it: accuracy by N_p, ours beside the paper's."""
    head = " | ".join(v for _, _, v in TABLE2_VARIANTS)
    lines = [
        f"| backbone | {head} |",
        "|---|" + "---:|" * len(TABLE2_VARIANTS),
    ]
    for backbone in IMAGE_BACKBONES:
        row = []
        for _, _, variant in TABLE2_VARIANTS:
            acc = [c["accuracy"] for c in seeds_of(cells, backbone, variant, seeds)]
            mean, _ = TABLE2[(backbone, variant)]
            ours = f"{statistics.mean(acc):.4f}" if acc else "pending"
            row.append(f"{ours} / {mean / 100:.4f}")
        lines.append(f"| {backbone} (ours / paper) | " + " | ".join(row) + " |")
    return lines


SIZE_VARIANTS = ("base", "duet-no-swa", TABLE2_DUET)


def size_md(results: Path, seed: int = 0) -> list[str]:
    """One seed of Table 2's cells at every CK+ input, with the linear floor at each."""
    lines = [
        "| input | backbone | method | val accuracy | test accuracy | epoch kept / trained | "
        "train samples/s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for protocol in IMAGE_PROTOCOLS:
        cells = load_cells(results, "table2", data_folder("ckplus", protocol))
        for backbone in IMAGE_BACKBONES:
            for variant in SIZE_VARIANTS:
                c = cells.get(cell_name(backbone, variant, seed))
                if c is None:
                    lines.append(f"| {protocol} | {backbone} | {variant} | pending | | | |")
                    continue
                lines.append(
                    f"| {protocol} | {backbone} | {variant} | {c['val_accuracy']:.4f} | "
                    f"{c['accuracy']:.4f} | {c['selected_epoch']} / {c['epochs']} | "
                    f"{c['train_samples_per_s']:,.0f} |"
                )
        ridge = load_floor(results, protocol)
        if ridge is not None:
            lines.append(
                f"| {protocol} | raw pixels | ridge (λ {ridge['lambda']:g}) | "
                f"{ridge['val_accuracy']:.4f} | {ridge['accuracy']:.4f} | — | — |"
            )
    return lines


def throughput_md(tables: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Training samples/s and peak resident memory per backbone and method (medians over
    the cached cells; the peak is the training process's own, reset per cell)."""
    lines = [
        "| table | backbone | method | epochs | train samples/s (median) | peak RSS MB "
        "(median) | cells |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for table, cells in tables.items():
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for c in cells.values():
            if "train_samples_per_s" in c and "base_run" not in c:  # adapted cells train nothing
                groups.setdefault((c["backbone"], c["variant"]), []).append(c)
        for (backbone, variant), rows in sorted(groups.items()):
            rate = statistics.median(c["train_samples_per_s"] for c in rows)
            rss = [c["train_peak_rss_bytes"] / 2**20 for c in rows if "train_peak_rss_bytes" in c]
            peak = f"{statistics.median(rss):,.0f}" if rss else "—"
            lines.append(
                f"| {table} | {backbone} | {variant} | {rows[0]['epochs']} | "
                f"{rate:,.0f} | {peak} | {len(rows)} |"
            )
    return lines
