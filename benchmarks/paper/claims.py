"""The claims of docs/results.md, tested over seeds: DUET's gain over base, paired by seed
so an unfinished seed does not bias it, with its t statistic; and SWA's effect on the
spread across seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.paper.cells import cell_name, seeds_of
from benchmarks.paper.grids import CLICK_BACKBONES
from simulation.paired_stats import paired_t


def claim_md(
    cells: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    metric: str = "auc",
    backbones: Sequence[str] = CLICK_BACKBONES,
    duet: str = "duet",
) -> list[str]:
    """The claim, per backbone: method ``duet``'s mean ``metric`` minus base's over the seeds
    both have finished (paired, so an unfinished seed does not bias the difference), how
    many of those seeds it wins, and the paired t statistic: a gain inside the seed-to-seed
    noise is reported as such, not as a win."""
    lines = [
        f"| backbone | {duet} − base (mean {metric}, paired seeds) | std base / {duet} | "
        f"seeds {duet} wins | paired t (95% bound) | {duet} above base |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for backbone in backbones:
        names = {s: (cell_name(backbone, "base", s), cell_name(backbone, duet, s)) for s in seeds}
        paired = [s for s in seeds if set(names[s]) <= cells.keys()]
        if not paired:
            lines.append(f"| {backbone} | pending | pending | 0/{len(seeds)} | pending | pending |")
            continue
        base = [cells[names[s][0]][metric] for s in paired]
        duet_values = [cells[names[s][1]][metric] for s in paired]
        gains = [d - b for d, b in zip(duet_values, base, strict=True)]
        diff = statistics.mean(gains)
        std = lambda v: f"{statistics.stdev(v):.4f}" if len(v) > 1 else "—"  # noqa: E731
        t, verdict = "—", "yes" if diff > 0 else "no"
        test = paired_t(gains)
        if test is not None:
            t_stat, bound = test
            t = f"{t_stat:+.1f} ({bound:.2f})"
            verdict += ", significant" if abs(t_stat) > bound else ", within noise"
        if len(paired) < len(seeds):
            verdict += " (provisional: seeds missing)"
        wins = sum(g > 0 for g in gains)
        lines.append(
            f"| {backbone} | {diff:+.4f} | {std(base)} / {std(duet_values)} | "
            f"{wins}/{len(paired)} | {t} | {verdict} |"
        )
    return lines


def swa_md(
    cells: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    metric: str,
    backbones: Sequence[str],
    duet: str,
) -> list[str]:
    """SWA's effect on the spread across seeds: std of duet-no-swa next to duet's."""
    lines = [
        f"| backbone | std {metric} duet-no-swa | std {metric} {duet} | seeds (no-swa / swa) |",
        "|---|---:|---:|---|",
    ]
    for backbone in backbones:
        no = [c[metric] for c in seeds_of(cells, backbone, "duet-no-swa", seeds)]
        sw = [c[metric] for c in seeds_of(cells, backbone, duet, seeds)]
        std = lambda v: f"{statistics.stdev(v):.4f}" if len(v) > 1 else "pending"  # noqa: E731
        lines.append(f"| {backbone} | {std(no)} | {std(sw)} | {len(no)} / {len(sw)} |")
    return lines
