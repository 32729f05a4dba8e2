"""The training losses: per-row losses and Eq. 7's γ^t-weighted objective.

Generated methods keep the global classifier's loss beside their own: the UMN is trained on
all history either way, and the global classifier is the device's fallback when the
generator cannot be reached (and the paired ``base`` of every gain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from duet.data import ClickSamples, Samples

if TYPE_CHECKING:
    from duet.model import DeviceModel
    from duet.train import TrainConfig


def row_loss(logits: Tensor, s: Samples) -> Tensor:
    """Unreduced loss per row: BCE for clicks, cross-entropy for image classes."""
    if isinstance(s, ClickSamples):
        return F.binary_cross_entropy_with_logits(logits, s.label, reduction="none")
    return F.cross_entropy(logits, s.label, reduction="none")


def weighted_loss(model: DeviceModel, s: Samples, cfg: TrainConfig) -> Tensor:
    """Eq. 7: Σ γ^t ℓ / Σ γ^t over the batch, for the method's head plus the global head."""
    w = cfg.gamma ** s.position.float()
    global_logits, gen_logits = model(s)
    loss = (row_loss(global_logits, s) * w).sum() / w.sum()
    if gen_logits is None:
        return loss
    gen = (row_loss(gen_logits, s) * w).sum() / w.sum()
    return gen + cfg.global_loss_weight * loss
