"""duet/tuned.py's defaults are what the parity runs measured: each (backbone, family)
takes the configuration with the best validation AUC among the committed parity cells of
that family, and the cell it names was trained with exactly that configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from duet.tuned import TUNED, Choice, family, tuned

PARITY = Path(__file__).resolve().parents[2] / "benchmarks" / "paper_results" / "parity"


def _cells() -> dict[str, dict]:
    files = sorted(PARITY.glob("*/*.json"))
    if not files:
        pytest.skip(f"no parity cells under {PARITY}")
    return {p.stem: json.loads(p.read_text()) for p in files}


def _family_of(name: str) -> tuple[str, str]:
    backbone, rest = name.split("-", 1)
    if rest.startswith("base-"):
        return backbone, "base"
    return backbone, "history" if "-history" in rest else "session"


@pytest.mark.parametrize("key", sorted(TUNED))
def test_each_choice_is_the_best_of_its_family_on_validation(key):
    cells = _cells()
    choice = TUNED[key]
    family_cells = {n: c for n, c in cells.items() if _family_of(n) == key}
    best = max(family_cells, key=lambda n: family_cells[n]["val_auc"])
    assert choice.evidence == best, (choice.evidence, best, family_cells[best]["val_auc"])
    options = cells[choice.evidence]["options"]
    assert {k: v for k, v in (options["arch"] or [])} == dict(choice.arch)
    if key[1] != "base":
        assert options["neck"] == choice.neck
        assert options["global_loss_weight"] == choice.global_loss_weight
    assert cells[choice.evidence]["test"] == "not read"  # chosen without the test split


def test_families():
    assert family("finetune-user", "history") == "base" == family("base", "session")
    assert family("duet", "history") == "history" and family("hypernet", "history") == "session"
    assert tuned("mobilenet_v3_small", "duet", "session") == Choice()
