"""A new fleet method in one file: DUET's generated classifier blended with the global one.

``duet-blend`` adapts DUET's checkpoint (it trains nothing of its own, so it shares DUET's
generator and request policies) and scores each session with ``alpha * generated + (1 -
alpha) * global`` weights, a shrinkage towards the global model for devices whose few
real-time clicks make the generated set noisy. docs/plugins.md walks through it. Name the
module under the scenario's ``plugins:`` and the method under ``methods:``:

    plugins: [examples.plugins.duet_blend]
    methods:
      - base
      - duet
      - {name: duet-blend, method: duet-blend}
"""

from __future__ import annotations

from duet.dynamic import with_received
from duet.method import METHODS, Method

ALPHA = 0.5  # weight of the generated set


@METHODS.register("duet-blend")
class DuetBlend(Method):
    """DUET's generated classifier shrunk halfway towards the global one."""

    adapts = "duet"  # scores with DUET's checkpoint; shares its generator deployment
    generated = True  # uploads real-time samples and downloads parameters (its policy decides when)
    conditioned = True  # takes condition and neck, like duet

    def session_params(self, model, samples, keys, received):  # noqa: ANN001, ANN201
        """What each of U sessions is scored with: (U, O, I) per layer, the global set where
        a device received nothing (a fallback, or nothing cached)."""
        global_params = model.classifier.params(len(keys))
        generated = with_received(global_params, received)
        return [
            (ALPHA * w + (1 - ALPHA) * gw, ALPHA * b + (1 - ALPHA) * gb)
            for (w, b), (gw, gb) in zip(generated, global_params, strict=True)
        ]
