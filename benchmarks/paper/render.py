"""docs/results.md: the static discussion (``benchmarks/paper_results.md.in``) with every
``{{KEY}}`` filled in from the cached cells, so the numbers in the docs are the cells'."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.paper.cells import ROOT, data_folder, load_cells
from benchmarks.paper.claims import claim_md, swa_md
from benchmarks.paper.fleet_tables import conditioning_md, figure4_md, policies_md
from benchmarks.paper.floor import load_floor
from benchmarks.paper.grids import CLICK_BACKBONES, IMAGE_BACKBONES, TABLE2_DUET, TABLE2_PROTOCOL
from benchmarks.paper.parity import parity_md, parity_table_md
from benchmarks.paper.probes import probes_md
from benchmarks.paper.table3 import table3_md
from benchmarks.paper.tables import (
    ranking_md,
    size_md,
    table1_md,
    table2_md,
    table4_md,
    theirs_md,
    throughput_md,
)

DOC = ROOT / "docs" / "results.md"
TEMPLATE = ROOT / "benchmarks" / "paper_results.md.in"


def render(
    results: Path, dataset: str, seeds: Sequence[int], template: str, plot: Path | None = None
) -> str:
    """docs/results.md: the static discussion (``template``) with every table filled in."""
    t1 = load_cells(results, "table1", dataset)
    core30 = data_folder(dataset, "paper-ml100k")  # the authors' 30-core filtered data
    t1_30 = load_cells(results, "table1", core30)
    t2 = load_cells(results, "table2", data_folder("ckplus", TABLE2_PROTOCOL))
    parts = {
        "TABLE1": table1_md(t1, seeds),
        "CLAIM": claim_md(t1, seeds),
        "CLAIM_HISTORY": claim_md(t1, seeds, duet="duet-history"),
        "CLAIM_HISTORY_NO_SWA": claim_md(t1, seeds, duet="duet-no-swa-history"),
        "CLAIM_FINETUNE_USER": claim_md(t1, seeds, duet="finetune-user"),
        "RANKING": ranking_md(t1, seeds),
        "PARITY": parity_md(results, dataset),
        "PARITY_TABLE": parity_table_md(results, dataset),
        "THEIRS": theirs_md({dataset: t1, core30: t1_30}),
        "TABLE1_30CORE": table1_md(t1_30, seeds[:3]),
        "RANKING_30CORE": ranking_md(t1_30, seeds[:3]),
        "CLAIM_30CORE": claim_md(t1_30, seeds[:3]),
        "CLAIM_30CORE_HISTORY": claim_md(t1_30, seeds[:3], duet="duet-history"),
        "CLAIM_30CORE_HISTORY_NO_SWA": claim_md(t1_30, seeds[:3], duet="duet-no-swa-history"),
        "CLAIM_30CORE_FINETUNE_USER": claim_md(t1_30, seeds[:3], duet="finetune-user"),
        "CLAIM2": claim_md(t2, seeds, "accuracy", IMAGE_BACKBONES, TABLE2_DUET),
        "TABLE4": table4_md(t2, seeds),
        "SIZES": size_md(results),
        "SWA1": swa_md(t1, seeds, "auc", CLICK_BACKBONES, "duet"),
        "TABLE2": table2_md(t2, seeds, load_floor(results, TABLE2_PROTOCOL)),
        "PROBES": probes_md(results, "table2"),
        "PROBES_TABLE1": probes_md(results, "table1"),
        "SWA2": swa_md(t2, seeds, "accuracy", IMAGE_BACKBONES, TABLE2_DUET),
        "TABLE3": table3_md(results),
        "FIGURE4": figure4_md(results, "ml100k-genre-shift", plot),
        "CONDITIONING": conditioning_md(results),
        "POLICIES": policies_md(
            results, None if plot is None else plot.with_name("request-policies.png")
        ),
        "FIGURE4_CK": figure4_md(
            results,
            "ckplus-figure4",
            None if plot is None else plot.with_name("figure4-ckplus.png"),
        ),
        "THROUGHPUT": throughput_md({"table1": t1, "table1 (30-core)": t1_30, "table2": t2}),
    }
    text = template
    for key, lines in parts.items():
        text = text.replace(f"{{{{{key}}}}}", "\n".join(lines))
    return text


def write_doc(out: Path, results: Path, dataset: str, seeds: Sequence[int]) -> None:
    """Render docs/results.md (or ``out``) with its figures written beside it."""
    text = render(results, dataset, seeds, TEMPLATE.read_text(), out.with_name("figure4.png"))
    out.write_text(text)
    print(f"written {out}")
