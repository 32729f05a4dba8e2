"""Device heterogeneity: network classes, compute tiers, upload modes, and seeded sampling of
one profile per simulated device (with its availability schedule and virtual think times).

Numbers that are assumptions, not the paper's: the paper's Table 3 gives the four bandwidths
only; the RTTs are typical for 4G/5G. Compute tiers are slowdowns relative to one core of
the machine running the simulation (a phone core is slower than a server core).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from actors.devices.arrivals import Arrival, Think

MB = 1_000_000  # the paper's MB/s are decimal megabytes


@dataclass(frozen=True)
class NetworkClass:
    """A link: ``transfer_s(n) = n / bandwidth + RTT`` (one request or response)."""

    name: str
    bandwidth_bytes_s: float
    rtt_s: float

    def transfer_s(self, num_bytes: int) -> float:
        return num_bytes / self.bandwidth_bytes_s + self.rtt_s


NETWORK_CLASSES: dict[str, NetworkClass] = {
    "4g-5": NetworkClass("4g-5", 5 * MB, 0.060),
    "4g-15": NetworkClass("4g-15", 15 * MB, 0.045),
    "5g-50": NetworkClass("5g-50", 50 * MB, 0.020),
    "5g-100": NetworkClass("5g-100", 100 * MB, 0.010),
}
# on-device time = time measured on one core here x this factor
COMPUTE_TIERS: dict[str, float] = {"high": 2.0, "mid": 5.0, "low": 10.0}
UPLOAD_MODES = ("raw", "embedding")  # raw samples, or embeddings computed on the device


@dataclass(frozen=True)
class DeviceProfile:
    """One simulated device: which user it replays, its draws, and its session schedule.

    Attributes:
        active (tuple[bool, ...]): per session slot, whether the device runs it (online
            and not yet churned); inactive slots produce no rows.
        start_s (tuple[float, ...]): per slot, the virtual time the session starts
            (cumulative think times, so it does not depend on measured latencies and a
            resumed device recomputes it exactly).
        shifts (tuple[int, ...]): indices of the scenario shifts whose group holds the device.
    """

    device_id: int
    user_id: int
    network: str
    compute: str
    upload: str
    backbone: str
    active: tuple[bool, ...]
    start_s: tuple[float, ...]
    shifts: tuple[int, ...] = ()

    @property
    def num_sessions(self) -> int:
        return sum(self.active)


def _draw(rng: np.random.Generator, weights: Mapping[str, float], n: int) -> np.ndarray:
    names = sorted(weights)
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return np.array(names, dtype=object)[rng.choice(len(names), size=n, p=p / p.sum())]


def sample_profiles(
    num_devices: int,
    users: Sequence[int],
    sessions: int,
    *,
    network: Mapping[str, float],
    compute: Mapping[str, float],
    upload: Mapping[str, float],
    backbone: Mapping[str, float],
    online: float = 1.0,
    churn: float = 0.0,
    arrival: Arrival | None = None,
    recorded: np.ndarray | None = None,
    seed: int = 0,
) -> list[DeviceProfile]:
    """Draw ``num_devices`` profiles; device d replays ``users[d % len(users)]``.

    Args:
        num_devices (int): devices to simulate (may exceed the users: replicas).
        users (Sequence[int]): dataset users with sessions to replay.
        sessions (int): session slots per device.
        network, compute, upload, backbone (Mapping[str, float]): shares per value.
        online (float): chance a device runs each slot. Default: 1.
        churn (float): chance it leaves for good after each slot. Default: 0.
        arrival (Arrival | None): when sessions start (actors/devices/arrivals.py).
            Default: ``Think()``, exponential think times.
        recorded (np.ndarray | None): (devices, sessions) recorded start times of the
            sessions each slot replays (NaN past a user's last), for a trace.
        seed (int): one seed for every draw.

    Raises:
        ValueError: no users, or a count below 1, quoting the value.
    """
    if num_devices < 1 or sessions < 1 or len(users) == 0:
        raise ValueError(
            f"need num_devices >= 1, sessions >= 1 and users, got "
            f"{num_devices}, {sessions}, {len(users)} users"
        )
    rng = np.random.default_rng([seed, 0x5EED])
    draws = {
        key: _draw(rng, w, num_devices)
        for key, w in (
            ("network", network),
            ("compute", compute),
            ("upload", upload),
            ("backbone", backbone),
        )
    }
    shape = (num_devices, sessions)
    starts = partial((arrival or Think()).starts, recorded=recorded)
    active, start = _schedule(rng, shape, online, churn, starts)
    return [
        DeviceProfile(
            device_id=d,
            user_id=int(users[d % len(users)]),
            network=str(draws["network"][d]),
            compute=str(draws["compute"][d]),
            upload=str(draws["upload"][d]),
            backbone=str(draws["backbone"][d]),
            active=tuple(active[d].tolist()),
            start_s=tuple(start[d].tolist()),
        )
        for d in range(num_devices)
    ]


def _schedule(
    rng: np.random.Generator,
    shape: tuple[int, int],
    online: float,
    churn: float,
    starts: Callable[[np.random.Generator, tuple[int, int]], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Per device and session slot (``shape``): whether the device runs it, and the virtual
    time it starts.

    A slot runs when the device is online for it, has not churned in an earlier slot and its
    arrival mode gives it a start (a trace's window may not); start times do not depend on
    whether a slot runs, only on the seed (a resumed device recomputes them exactly). Drawn
    after the profile values from the same ``rng``, in this order, so a seed gives the fleet
    it always gave.
    """
    present = rng.random(shape) < online
    left = np.cumsum(rng.random(shape) < churn, axis=1) > 0  # churned after slot
    left = np.concatenate([np.zeros((shape[0], 1), bool), left[:, :-1]], axis=1)
    start = starts(rng, shape)
    return present & ~left & np.isfinite(start), start


def select_group(
    profiles: Sequence[DeviceProfile],
    *,
    fraction: float = 1.0,
    seed: int = 0,
    salt: int = 0,
    **filters: Sequence[str] | None,
) -> set[int]:
    """Device ids matching every filter (``network=["4g-5"]``...), then a seeded ``fraction``
    of them (rounded).

    ``salt`` separates the draws of different groups under one seed.
    """
    unknown = sorted(set(filters) - {"network", "compute", "upload", "backbone"})
    if unknown:
        raise ValueError(f"unknown group filter(s) {unknown}")
    match = [
        p.device_id
        for p in profiles
        if all(allowed is None or getattr(p, key) in allowed for key, allowed in filters.items())
    ]
    rng = np.random.default_rng([seed, 0x6409, salt])
    count = round(fraction * len(match))  # exactly this many, so small fleets get the share asked
    return {match[i] for i in rng.permutation(len(match))[:count]}
