"""The model's named choices: the PPG necks, the conditioning modes, the learning-rate
schedules and epoch selections, defined once and imported wherever a name is checked or
listed (duet/ itself, the CLI, the scenario schema); methods and backbones are registered
classes (duet/method.py, duet/backbone.py). No torch import, so `duet-sim --help` stays
fast."""

from __future__ import annotations

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
