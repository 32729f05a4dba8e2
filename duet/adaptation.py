"""How the adapting methods adapt a trained model: their settings, torch-free so the scenario
schema and the CLI read them without loading torch.

`finetune` (ours, per session) and `finetune-user` (the authors' public code, per user)
are defined in duet/finetune.py; duet/methods.py says which method uses which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duet.data import Samples


@dataclass(frozen=True)
class FinetuneConfig:
    """`finetune`: k Adam steps per session on its real-time samples."""

    steps: int = 10  # k gradient steps per session
    lr: float = 1e-2
    negatives: int = 4  # sampled negatives per real-time click, as in training
    seed: int = 0


@dataclass(frozen=True)
class UserFinetuneConfig:
    """`finetune-user`'s settings: the authors' defaults (epochs 1, lr 1e-3, batch 1024)."""

    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 1024
    seed: int = 0


@dataclass(frozen=True)
class Adaptation:
    """The adaptation settings a method instance carries, and ``history``, the users'
    labelled training rows (what ``finetune-user`` adapts on; None where there are none)."""

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    user: UserFinetuneConfig = field(default_factory=UserFinetuneConfig)
    history: Samples | None = None
