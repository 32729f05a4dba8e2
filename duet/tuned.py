"""The backbone and generator choices the click models train with by default, picked on
ML-100K's validation split where our code and the authors' (HelloZicky/DUET) differ.

`python -m benchmarks.paper parity` trained each difference alone and in combinations (seed 0,
2 epochs, validation only: the test split was not read); docs/results.md ("Parity") has
every number. Each (backbone, family) below takes the configuration with the best
validation AUC among those tried, where the families are the base-trained models (base,
finetune, finetune-user), and the generated ones per conditioning mode (DUET and DUET w/o
SWA, judged on w/o SWA; hypernet, which reads no data, takes the session choice).
``evidence`` names the parity cell each choice comes from; a test checks that it is the
best of its family in the committed cells.

An explicit ``--arch``, ``--neck`` or ``--global-loss-weight`` overrides these. Images
have no such choices (MobileNetV3's are the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from duet.method import METHODS
from duet.names import DEFAULT_NECK


@dataclass(frozen=True)
class Choice:
    arch: tuple[tuple[str, Any], ...] = ()  # duet.builders.ARCH_DEFAULTS overrides
    neck: str = DEFAULT_NECK
    global_loss_weight: float = 1.0
    evidence: str = ""  # the parity cell (benchmarks/paper_results/parity/) it comes from


SMALL_POSITIONS = (("pos_std", 0.05),)
TOWER = (("target_tower", True),)
THEIRS_GRU4REC = (("dropout", 0.0), ("target_tower", True), ("activation", "tanh"))
THEIRS_DIN = (("target_tower", True), ("activation", "tanh"))

TUNED: dict[tuple[str, str], Choice] = {
    ("sasrec", "base"): Choice(SMALL_POSITIONS + TOWER, evidence="sasrec-base-positions+tower-s0"),
    ("sasrec", "session"): Choice(
        SMALL_POSITIONS + TOWER, evidence="sasrec-duet-no-swa-positions+tower-session-s0"
    ),
    ("sasrec", "history"): Choice(
        SMALL_POSITIONS + TOWER,
        neck="gru",
        global_loss_weight=0.0,
        evidence="sasrec-duet-no-swa-positions+tower-history-gru-no-global-loss-s0",
    ),
    ("gru4rec", "base"): Choice(THEIRS_GRU4REC, evidence="gru4rec-base-theirs-s0"),
    ("gru4rec", "session"): Choice(evidence="gru4rec-duet-no-swa-ours-session-s0"),
    ("gru4rec", "history"): Choice(
        global_loss_weight=0.0, evidence="gru4rec-duet-no-swa-ours-history-no-global-loss-s0"
    ),
    ("din", "base"): Choice(THEIRS_DIN, evidence="din-base-theirs-s0"),
    ("din", "session"): Choice(evidence="din-duet-no-swa-ours-session-s0"),
    ("din", "history"): Choice(
        neck="gru",
        global_loss_weight=0.0,
        evidence="din-duet-no-swa-ours-history-gru-no-global-loss-s0",
    ),
}


def family(method: str, condition: str) -> str:
    """``base`` for base-trained models, else the generated model's conditioning mode (a
    generator that reads no data takes the session choice)."""
    trained = METHODS[METHODS[method].trained_as()]
    if not trained.generated:
        return "base"
    return condition if trained.conditioned else "session"


def tuned(backbone: str, method: str, condition: str) -> Choice:
    """The chosen configuration of a click backbone's model; :class:`Choice` () otherwise."""
    return TUNED.get((backbone, family(method, condition)), Choice())
