"""The fleet plan of a run: which devices there are, what each is (profile, shift groups),
which fleet actor hosts it, and how many session rows every method must write. Pure: a
scenario and the replayable users in, the plan out, the same for the same seed, so it is
tested without Ray and a resumed run plans exactly the devices it planned before."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

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


def plan_fleets(scenario: Scenario, users: Sequence[int]) -> FleetPlan:
    """Sample the scenario's devices over ``users`` (device d replays user d mod U) and put
    each in the groups of the shifts whose ``devices`` block selects it.

    Raises:
        ValueError: no user to replay.
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
        session_gap_s=profiles.session_gap_s,
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
