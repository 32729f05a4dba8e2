"""The fleet plan of a run: which devices there are, what each is (profile, shift groups),
which fleet actor hosts it, and how many session rows every method must write. Pure: a
scenario and the replayable users in, the plan out, the same for the same seed, so it is
tested without Ray and a resumed run plans exactly the devices it planned before."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from actors.devices.profiles import DeviceProfile, sample_profiles, select_group
from simulation.scenario import Scenario


@dataclass(frozen=True)
class FleetPlan:
    """Devices (``DeviceProfile.shifts`` filled in) and their split over fleet actors."""

    devices: tuple[DeviceProfile, ...]
    fleets: int

    def fleet_of(self, device: DeviceProfile) -> int:
        return device.device_id % self.fleets

    def devices_of(self, fleet: int) -> tuple[DeviceProfile, ...]:
        """Fleet ``fleet``'s devices: every ``fleets``-th, so fleets get even mixes."""
        return self.devices[fleet :: self.fleets]

    def expected(self, methods: Sequence[str]) -> dict[str, int]:
        """Session rows each method must write: one per active device session."""
        total = sum(d.num_sessions for d in self.devices)
        return dict.fromkeys(methods, total)


def plan_fleets(
    scenario: Scenario,
    users: Sequence[int],
    recorded: Mapping[int, np.ndarray] | None = None,
) -> FleetPlan:
    """Sample the scenario's devices over ``users`` (device d replays user d mod U) and put
    each in the groups of the shifts whose ``devices`` block selects it. ``recorded`` holds
    each user's replayed sessions' recorded start times (`replay.recorded_starts`), which a
    trace arrival mode reads.

    Raises:
        ValueError: no user to replay, or a trace over data without timestamps.
    """
    if len(users) == 0:
        raise ValueError("no test sessions to replay")
    fleet, profiles = scenario.fleet, scenario.fleet.profiles
    devices = sample_profiles(
        fleet.devices,
        list(users),
        fleet.sessions_per_device,
        network=profiles.network,
        compute=profiles.compute,
        upload=profiles.upload,
        backbone=scenario.backbone_weights,
        online=profiles.availability.online,
        churn=profiles.availability.churn,
        arrival=fleet.arrivals,
        recorded=_slot_times(recorded, users, fleet.devices, fleet.sessions_per_device),
        seed=scenario.seed,
    )
    # the salt is the group's own spec: identical `devices:` blocks pick the same devices
    groups = [
        select_group(
            devices,
            seed=scenario.seed,
            **shift.devices.model_dump(),
            salt=zlib.crc32(shift.devices.model_dump_json().encode()),
        )
        for shift in scenario.shifts
    ]
    planned = tuple(
        dataclasses.replace(d, shifts=tuple(i for i, g in enumerate(groups) if d.device_id in g))
        for d in devices
    )
    return FleetPlan(planned, fleet.actors)


def _slot_times(
    recorded: Mapping[int, np.ndarray] | None, users: Sequence[int], devices: int, sessions: int
) -> np.ndarray | None:
    """(devices, sessions): the recorded start of the session each slot replays, NaN past
    the user's last one (a trace has no more of that user)."""
    if recorded is None:
        return None
    out = np.full((devices, sessions), np.nan)
    for d in range(devices):
        times = recorded.get(int(users[d % len(users)]), np.zeros(0))[:sessions]
        out[d, : len(times)] = times
    return out
