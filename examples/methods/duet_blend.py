"""A new fleet method in one file: DUET's generated classifier blended with the global one.

docs/methods.md ("Adding your own method") walks through it. ``duet-blend`` asks the cloud like
``duet`` (same checkpoint, same generator, same request policies) and scores each session
with ``alpha * generated + (1 - alpha) * global`` weights, a shrinkage towards the global
model for devices whose few real-time clicks make the generated set noisy. Name the module
under the scenario's ``plugins:`` and the method under ``methods:``:

    plugins: [examples.methods.duet_blend]
    methods:
      - base
      - duet
      - {name: duet-blend, method: duet-blend}
"""

from __future__ import annotations

from actors.devices.methods import FleetMethod, register_method
from actors.devices.ondevice import with_received

ALPHA = 0.5  # weight of the generated set


@register_method("duet-blend")
class DuetBlend(FleetMethod):
    """DUET's generated classifier shrunk halfway towards the global one."""

    checkpoint = "duet"  # scores with DUET's checkpoint; shares its generator deployment
    generated = True  # uploads real-time samples and downloads parameters (its policy decides when)
    conditioned = True  # takes condition and neck, like duet

    def session_params(self, model, samples, replays, received):  # noqa: ANN001, ANN201
        """What each of U sessions is scored with: (U, O, I) per layer, the global set where
        a device received nothing (a fallback, or nothing cached)."""
        U = len(replays)
        generated = with_received(model, U, received)
        return [
            (ALPHA * w + (1 - ALPHA) * gw, ALPHA * b + (1 - ALPHA) * gb)
            for (w, b), (gw, gb) in zip(generated, model.classifier.params(U), strict=True)
        ]
