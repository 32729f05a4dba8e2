"""A new trained method in one file: DUET whose generator also emits a temperature.

``duet-temperature`` trains a checkpoint of its own. Its dynamic layers get one more output
unit, which the ``temperature`` head reads as an inverse temperature: the logit is DUET's,
scaled by ``softplus(t) + 0.1``, where ``t`` comes out of the same per-device generated layer
as the rest, so each device gets its own sharpness (and, since ``t`` is computed from the
row's features, one per row too). The global classifier has the unit too (the fallback's
temperature is learned once for every device). Everything else is DUET's: its generator
(SWA over N_p), its loss, its request policies, its place in the fleet.

Train it, evaluate it offline, then run it in a fleet (docs/plugins.md):

    duet-sim train --plugin examples.plugins.duet_temperature --method duet-temperature \\
        --dataset synthetic-clicks --backbone din --out runs/temp
    # a scenario:  plugins: [examples.plugins.duet_temperature]
    #              methods: [base, duet, duet-temperature]
"""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor

from duet.dynamic import HEADS, ClassifierConfig, Head
from duet.method import METHODS
from duet.methods import Duet

FLOOR = 0.1  # the least inverse temperature: a device's logits never flatten to zero


def _scale(t: Tensor) -> Tensor:
    return F.softplus(t) + FLOOR


@HEADS.register("temperature")
class Temperature(Head):
    """The last output unit scales the logit of the others (an inverse temperature)."""

    @staticmethod
    def logits(out: Tensor, target_emb: Tensor | None) -> Tensor:
        z, t = out[..., :-1], _scale(out[..., -1])  # (D, N, O - 1), (D, N)
        if target_emb is None:
            return z * t[..., None]  # (D, N, C)
        return (z * target_emb).sum(-1) * t  # (D, N)

    @staticmethod
    def item_logits(out: Tensor, items: Tensor) -> Tensor:
        return (out[:, :-1] @ items.T) * _scale(out[:, -1:])  # (P, N + 1)


@METHODS.register("duet-temperature")
class DuetTemperature(Duet):
    """DUET with a generated per-device inverse temperature."""

    @classmethod
    def head(cls, classifier: ClassifierConfig) -> ClassifierConfig:
        dims = (*classifier.dims[:-1], classifier.dims[-1] + 1)  # one more output unit
        return dataclasses.replace(classifier, dims=dims, head="temperature")
