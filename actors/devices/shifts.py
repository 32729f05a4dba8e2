"""Shifts on a fleet's devices: which built operators cover a device's session k, applied in
order with a random stream of its own per (device, session), so replicas of one user differ.
The first session a fleet plays under a shift is reported once, as a shift event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from actors.devices.fleet_metrics import FleetMetrics
from actors.devices.profiles import DeviceProfile
from actors.devices.replay import Replay
from pipelines.shifts import ShiftContext, session_rng


@dataclass(frozen=True)
class ShiftPlan:
    """A built shift operator and the session window it covers on its devices."""

    name: str
    op: Any  # a pipelines.shifts operator
    at_session: int = 0
    until_session: int | None = None

    def covers(self, k: int) -> bool:
        return k >= self.at_session and (self.until_session is None or k < self.until_session)


class ShiftSchedule:
    """A fleet's shift plans, indexed by `DeviceProfile.shifts`.

    Args:
        plans (Sequence[ShiftPlan]): the run's shifts.
        context (ShiftContext | None): runtime data the shift operators need.
        devices (Sequence[DeviceProfile]): the fleet's devices (a shift event counts its own).
        seed (int): the run's seed.
        metrics (FleetMetrics): where shift events go.
    """

    def __init__(
        self,
        plans: Sequence[ShiftPlan],
        context: ShiftContext | None,
        devices: Sequence[DeviceProfile],
        seed: int,
        metrics: FleetMetrics,
    ):
        self.plans, self.context = list(plans), context or ShiftContext()
        self.seed, self.metrics = seed, metrics
        self._devices = Counter(i for d in devices for i in d.shifts)
        self._started: set[int] = set()

    def apply(self, device: DeviceProfile, k: int, replay: Replay) -> tuple[Any, str]:
        """Session k of ``device`` (replaying ``replay``) under its shifts, and their names
        joined by "+" ("" when none covers it)."""
        covering = [i for i in device.shifts if self.plans[i].covers(k)]
        for i in set(covering) - self._started:  # the shift reaches this fleet now
            self._started.add(i)
            self.metrics.record_shift(self.plans[i].name, self._devices[i])
        plans = [self.plans[i] for i in covering]
        session = replay.session
        rng = session_rng(self.seed, device.device_id, k)  # not the user: replicas differ
        for plan in plans:
            session = plan.op.apply(session, rng, self.context)
        return session, "+".join(p.name for p in plans)
