"""The model's named choices: every backbone, PPG neck and conditioning mode by name, defined
once and imported wherever a name is checked or listed (duet/ itself, the CLI, the scenario
schema, the benchmarks); methods are registered classes (duet/method.py). No torch import,
so `duet-sim --help` stays fast."""

from __future__ import annotations

# backbone -> the data kind it reads
BACKBONES: dict[str, str] = {
    "sasrec": "clicks",
    "gru4rec": "clicks",
    "din": "clicks",
    "mobilenet_v3_large": "images",
    "mobilenet_v3_small": "images",
}
BACKBONE_NAMES = tuple(BACKBONES)
SEQUENCE_BACKBONE_NAMES = tuple(b for b, kind in BACKBONES.items() if kind == "clicks")
IMAGE_BACKBONE_NAMES = tuple(b for b, kind in BACKBONES.items() if kind == "images")

# the PPG's shared neck over real-time clicks; images pool features by mean
NECKS = ("mean", "gru", "gru-mean")
DEFAULT_NECK = "mean"

# what a generated method's PPG reads: the session's real-time samples (the paper's text, one
# generation per session) or each scored impression's own click history (the authors' public
# code, one generation per impression)
CONDITIONS = ("session", "history")
DEFAULT_CONDITION = "session"

# the learning rate over training: the paper's constant Adam rate, or a cosine decay to 0
LR_SCHEDULES = ("constant", "cosine")

# which epoch training keeps: the best on the validation split, or the last
SELECTIONS = ("best", "last")


def check_backbone_fits(backbone: str, kind: str) -> None:
    """Raises ValueError when ``backbone`` does not read ``kind`` data (an image backbone on
    clicks, or the reverse), naming both."""
    if BACKBONES[backbone] != kind:
        raise ValueError(f"backbone {backbone!r} reads {BACKBONES[backbone]}, not {kind}")
