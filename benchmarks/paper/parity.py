"""Parity with the authors' code (HelloZicky/DUET at 7cf8069), on the validation split.

Each choice where our code and theirs differ (docs/results.md, "Parity") is tried one at a
time on top of ours, then all of theirs together; the test split is not read, so adopting
the better one is model selection, not test tuning. duet/tuned.py holds what was adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import Cell, data_folder, load_cells
from benchmarks.paper.grids import CLICK_BACKBONES, EPOCHS, prepared, run_cells

# ---- parity with the authors' code (validation only) ---------------------------------------
# Each choice where our code and HelloZicky/DUET differ (docs/results.md, "Parity"), tried
# one at a time on top of ours, then all of theirs together, on the validation split: the
# test split is not read, so adopting the better one is model selection, not test tuning.
THEIRS_SASREC = (
    ("num_blocks", 1),
    ("ffn_mult", 4),
    ("dropout", 0.0),
    ("norm_first", False),
    ("causal", False),
    ("input_transform", True),
    ("target_tower", True),
    ("pos_std", 0.05),
    ("activation", "tanh"),
)
PARITY_ARCH: dict[str, tuple[tuple[str, Any], ...]] = {
    "ours": (),
    "target-tower": (("target_tower", True),),
    "input-transform": (("input_transform", True),),
    "one-wide-block": (("num_blocks", 1), ("ffn_mult", 4)),
    "no-dropout": (("dropout", 0.0),),
    "post-ln": (("norm_first", False),),
    "no-mask": (("causal", False),),
    "small-positions": (("pos_std", 0.05),),
    "tanh": (("activation", "tanh"),),
    "theirs": THEIRS_SASREC,
    # the choices that each beat ours on SASRec's validation AUC (seed 0: small positions
    # +0.012, the target tower +0.006, the input transform +0.006), together, and the best
    # one with each of the other two (greedy forward selection)
    "adopted": (("pos_std", 0.05), ("target_tower", True), ("input_transform", True)),
    "positions+tower": (("pos_std", 0.05), ("target_tower", True)),
    "positions+input": (("pos_std", 0.05), ("input_transform", True)),
}
# which backbones each choice exists on (GRU4Rec drops out its inputs, DIN has no dropout)
ARCH_APPLIES = {
    "target_tower": CLICK_BACKBONES,
    "activation": CLICK_BACKBONES,
    "dropout": ("sasrec", "gru4rec"),
} | {
    k: ("sasrec",)
    for k in ("num_blocks", "ffn_mult", "norm_first", "causal", "input_transform", "pos_std")
}
# the generator's choices, on top of an architecture: (tag, options)
PARITY_DUET: dict[str, tuple[tuple[str, Any], ...]] = {
    "session": (),
    "history": (("condition", "history"),),
    "history-gru": (("condition", "history"), ("neck", "gru")),
    "history-no-global-loss": (("condition", "history"), ("global_loss_weight", 0.0)),
    "history-gru-no-global-loss": (
        ("condition", "history"),
        ("neck", "gru"),
        ("global_loss_weight", 0.0),
    ),
}
# The differences between our code and theirs, point by point (the helper's reading of
# HelloZicky/DUET at 7cf8069 and the paper): (component, ours, theirs, the parity variant that
# measures it on base (or, for the generator's, on DUET w/o SWA), what we did). Rendered
# with each variant's validation effect beside it (`parity_table_md`).
PARITY_CHOICES: tuple[tuple[str, str, str, str, str, str], ...] = (
    (
        "positions (SASRec)",
        "learned, N(0, 1) init, 20x the item scale",
        "learned, xavier init (~0.05), `model/sasrec/model_fn.py:20-23`",
        "small-positions",
        "ours",
        "changed: std 0.05, every SASRec model",
    ),
    (
        "target tower (all)",
        "the raw item embedding",
        "Linear-Tanh-Linear on the target, `model_fn.py:30-32, 64`",
        "target-tower",
        "ours",
        "added for base on all three, and SASRec's DUET; GRU4Rec's and DIN's DUET keep ours",
    ),
    (
        "input transform (SASRec)",
        "none",
        "Linear + Tanh on item + position, `model_fn.py:33-35, 81`",
        "input-transform",
        "ours",
        "kept ours: with small positions it loses (0.9254 vs 0.9265)",
    ),
    (
        "encoder (SASRec)",
        "2 pre-LN blocks, FFN 1x",
        "1 `nn.TransformerEncoderLayer`, FFN 4x, `model_fn.py:37-42`",
        "one-wide-block",
        "ours",
        "kept ours",
    ),
    (
        "dropout",
        "0.1 (SASRec, GRU4Rec)",
        "0, `model_fn.py:41`",
        "no-dropout",
        "ours",
        "kept ours, except GRU4Rec's base, which takes theirs whole",
    ),
    (
        "layer norm (SASRec)",
        "pre-LN + final LN",
        "post-LN, no final LN",
        "post-ln",
        "ours",
        "kept ours",
    ),
    (
        "attention mask (SASRec)",
        "causal + padding",
        "none: attends to every position",
        "no-mask",
        "ours",
        "kept ours",
    ),
    (
        "classifier activation",
        "ReLU",
        "Tanh, `model_fn.py:54-58`",
        "tanh",
        "ours",
        "kept ours, except GRU4Rec's and DIN's base, which take theirs whole",
    ),
    (
        "all of theirs",
        "",
        "every row above that the backbone has",
        "theirs",
        "ours",
        "taken whole by GRU4Rec's and DIN's base; SASRec's base takes positions + tower (+0.0170)",
    ),
    (
        "generator input",
        "the session's real-time clicks, once per session",
        "each scored impression's own history, per impression, `meta_sasrec/model_fn.py:99-101`",
        "history",
        "session",
        "both kept: `--condition session|history` (Table 1 has both)",
    ),
    (
        "generator neck, over a history",
        "masked mean",
        "GRU, state at the last click, `module/common.py:66-79`",
        "history-gru",
        "history",
        "GRU for SASRec and DIN, the mean for GRU4Rec",
    ),
    (
        "global classifier loss, with a history",
        "trained beside the generated one (weight 1)",
        "none: only the generated head",
        "history-no-global-loss",
        "history",
        "dropped under history conditioning (the best history configuration of every backbone "
        "has none); kept under session conditioning",
    ),
    (
        "generator weights",
        "trained",
        "never trained: plain Python lists of `Parameter`s, `module/common.py:61-64, 89-93`",
        "",
        "",
        "kept ours (registering theirs: -0.0007 test AUC on their code)",
    ),
    (
        "SWA",
        "N_p = 5 generators mixed (duet)",
        "none",
        "",
        "",
        "both in Table 1 (duet, duet-no-swa)",
    ),
    (
        "batch, epochs, order",
        "256, best of 2 on validation, shuffled",
        "1024, best of 10 on test, file order",
        "",
        "",
        "kept ours (ours at 1024: 0.831 vs theirs 0.905 test AUC, same number of steps)",
    ),
    (
        "fine-tuning baseline",
        "per session, the classifier, on real-time clicks",
        "per user, every parameter, on the user's training rows, 1 epoch at batch 1024",
        "",
        "",
        "added theirs as finetune-user",
    ),
)


def _arch_options(backbone: str, arch: str) -> tuple[tuple[str, Any], ...]:
    """The choices of architecture ``arch`` that ``backbone`` has (:data:`ARCH_APPLIES`)."""
    return tuple((k, v) for k, v in PARITY_ARCH[arch] if backbone in ARCH_APPLIES[k])


def parity_cell(
    dataset: str, backbone: str, seed: int, arch: str, duet: str | None = None, protocol: str = ""
) -> Cell:
    """Base on architecture ``arch`` or, given a :data:`PARITY_DUET` variant ``duet``, DUET
    without SWA with that generator on it. Every choice is spelled out, so that
    duet/tuned.py's defaults never leak into a cell."""
    arch_opt = (("arch", _arch_options(backbone, arch)),)
    if duet is None:
        return Cell(
            "parity", dataset, backbone, "base", seed, tag=arch, options=arch_opt, protocol=protocol
        )
    generator = {"neck": "mean", "global_loss_weight": 1.0} | dict(PARITY_DUET[duet])
    return Cell(
        "parity",
        dataset,
        backbone,
        "duet-no-swa",
        seed,
        tag=f"{arch}-{duet}",
        options=arch_opt + tuple(generator.items()),
        protocol=protocol,
    )


def parity_cells(
    dataset: str,
    backbone: str,
    seed: int,
    archs: Sequence[str],
    duets: Sequence[str],
    protocol: str = "",
) -> list[Cell]:
    """Base cells per architecture variant, and duet-no-swa cells per generator variant on
    each architecture; ``arch`` options only where the backbone is SASRec, except the
    classifier and target choices, which every backbone has."""
    cells = []
    for arch in archs:
        if arch != "ours" and not _arch_options(backbone, arch):
            continue  # a SASRec-only choice on another backbone
        cells.append(parity_cell(dataset, backbone, seed, arch, protocol=protocol))
        cells += [parity_cell(dataset, backbone, seed, arch, duet, protocol) for duet in duets]
    return cells


def run_parity(
    dataset: str,
    protocol: str,
    seeds: Sequence[int],
    backbones: Sequence[str],
    archs: Sequence[str],
    duets: Sequence[str],
    data_dir: Path | None,
    results: Path,
    runs: Path,
) -> None:
    """Train the parity cells, validation only, with Table 1's epochs."""
    data = prepared(dataset, data_dir, runs, protocol)
    for seed in seeds:
        for backbone in backbones:
            cells = parity_cells(dataset, backbone, seed, archs, duets, protocol)
            run_cells(cells, EPOCHS["table1"], data, results, runs, test=False)


def parity_scores(results: Path, dataset: str) -> Callable[..., float | None]:
    """Seed 0's validation AUC of a cached parity cell by (backbone, arch[, duet]), None
    while it is pending: the cells are looked up by :func:`parity_cell`'s names."""
    cells = load_cells(results, "parity", data_folder(dataset))

    def val_auc(backbone: str, arch: str, duet: str | None = None) -> float | None:
        return cells.get(parity_cell(dataset, backbone, 0, arch, duet).name, {}).get("val_auc")

    return val_auc


def parity_md(results: Path, dataset: str) -> list[str]:
    """The parity runs on the validation split: each of the authors' choices alone and
    together on the base model, then the generator's choices on an architecture, each
    beside the base of that architecture."""
    val_auc = parity_scores(results, dataset)
    lines = [
        "| backbone | architecture | choices | base val AUC | vs ours |",
        "|---|---|---|---:|---:|",
    ]
    for backbone in CLICK_BACKBONES:
        ours = val_auc(backbone, "ours")
        for arch in PARITY_ARCH:
            auc = val_auc(backbone, arch)
            if auc is None:
                continue
            text = ", ".join(f"{k}={v}" for k, v in _arch_options(backbone, arch))
            delta = "—" if ours is None or arch == "ours" else f"{auc - ours:+.4f}"
            lines.append(f"| {backbone} | {arch} | {text or 'ours'} | {auc:.4f} | {delta} |")
    lines += [
        "",
        "| backbone | architecture | generator | duet-no-swa val AUC | vs that base |",
        "|---|---|---|---:|---:|",
    ]
    for backbone in CLICK_BACKBONES:
        for arch in PARITY_ARCH:
            base = val_auc(backbone, arch)
            for duet in PARITY_DUET:
                auc = val_auc(backbone, arch, duet)
                if auc is None:
                    continue
                delta = "—" if base is None else f"{auc - base:+.4f}"
                lines.append(f"| {backbone} | {arch} | {duet} | {auc:.4f} | {delta} |")
    return lines


def parity_table_md(results: Path, dataset: str) -> list[str]:
    """:data:`PARITY_CHOICES` with each variant's validation AUC effect per backbone,
    against the variant it changes: a base variant against our base, a generator variant
    against its parent (history against session, the neck and the loss against history),
    all on our architecture."""
    val_auc = parity_scores(results, dataset)
    lines = [
        "| component | ours | theirs | validation effect (SASRec / GRU4Rec / DIN) | decision |",
        "|---|---|---|---|---|",
    ]

    def auc(backbone: str, variant: str) -> float | None:
        if variant in PARITY_DUET:
            return val_auc(backbone, "ours", variant)
        return val_auc(backbone, variant)

    for component, ours, theirs, variant, against, decision in PARITY_CHOICES:
        effects = []
        for backbone in ("sasrec", "gru4rec", "din"):  # theirs has SASRec only: it leads
            a, b = (auc(backbone, variant), auc(backbone, against)) if variant else (None, None)
            effects.append("—" if a is None or b is None else f"{a - b:+.4f}")
        effect = " / ".join(effects) if variant else "not a parity run"
        lines.append(f"| {component} | {ours} | {theirs} | {effect} | {decision} |")
    return lines
