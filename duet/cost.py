"""On-device cost of a model: parameter count and FLOPs of one sample's forward.

The device runs the backbone and the classifier; the PPG stays in the cloud, so it is
counted in neither number (paper Table 1, "Param." and "FLOPs").
"""

from __future__ import annotations

import torch

from duet.data import Samples
from duet.metrics import count_flops
from duet.model import DeviceModel


def on_device_params(model: DeviceModel) -> int:
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return backbone + model.cfg.classifier.num_params


@torch.no_grad()
def on_device_flops(model: DeviceModel, samples: Samples) -> int:
    """FLOPs to score the first row of ``samples`` with the global classifier."""
    model.eval()
    one = samples.index(torch.tensor([0]))

    def forward() -> None:
        feat, temb = model.features(one)
        model.score(feat[None], None if temb is None else temb[None], model.classifier.params(1))

    return count_flops(forward)
