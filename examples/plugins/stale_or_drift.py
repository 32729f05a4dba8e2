"""A new request policy in one file: ask when the cached parameters are stale or the device
has drifted.

``stale_or_drift`` asks the cloud at a session start when nothing is cached, when the cached
parameters were generated ``max_age`` or more sessions ago, or when the drift score of the
session's real-time samples from those the cached set was generated from exceeds
``threshold`` (actors/devices/policies.py ``drift_score``). It bounds staleness, which a
pure drift threshold does not, at the cost of a request every ``max_age`` sessions.
docs/plugins.md walks through it.

    # a scenario:  plugins: [examples.plugins.stale_or_drift]
    #              methods:
    #                - {name: duet-fresh, method: duet,
    #                   policy: {type: stale_or_drift, max_age: 3, threshold: 0.4}}
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from actors.devices.policies import POLICIES, REQUEST, CacheState, Decision, RequestPolicy


@POLICIES.register()
class StaleOrDrift(RequestPolicy):
    """Ask when nothing is cached, the cache is ``max_age`` sessions old, or drift is high."""

    type: Literal["stale_or_drift"] = "stale_or_drift"
    max_age: Annotated[int, Field(gt=0, strict=True)] = 3
    threshold: Annotated[float, Field(gt=0, le=2, strict=True)] = 0.4
    needs_drift: ClassVar[bool] = True

    def decide(self, state: CacheState, drift: float) -> Decision:
        if state.params is None or state.age() >= self.max_age:
            return REQUEST
        return REQUEST if drift > self.threshold else Decision(False, "cached")
