"""A device's request policy at work: whether it asks the generator this session, and the
parameters it keeps between sessions (per generated method, a `CacheState` of
actors/devices/policies.py; lost on a restart, so a resumed device starts with nothing
cached). A session that does not request scores with what the device holds, or with the
global classifier when it holds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from actors.devices.config import FleetConfig
from actors.devices.gateway import Generated
from actors.devices.ondevice import DeviceModels
from actors.devices.policies import CacheState, Decision, drift_score
from actors.devices.profiles import DeviceProfile
from pipelines.shifts import ClickSession


@dataclass(frozen=True)
class Ask:
    """A request policy's decision for one (device, session, method), with what it read:
    the drift score (NaN when the policy does not use it) and the cached set's age in
    sessions (-1: nothing cached), and the session's fingerprint (stored on success)."""

    policy: str
    decision: Decision
    drift: float
    age: int
    fingerprint: np.ndarray | None


def requested(ask: Ask | None) -> bool:
    """Whether the session asked the generator (None: a method the cloud does not generate)."""
    return ask is not None and ask.decision.request


def realtime_input(session) -> torch.Tensor:
    """A session's real-time samples as the device's model reads them: (1, R) item ids, or
    (1, C, H, W) of its first frame in [0, 1]."""
    if isinstance(session, ClickSession):
        return torch.from_numpy(session.realtime[None].astype(np.int64))
    return torch.from_numpy(session.pixels[:1]).float() / 255.0


def decide(
    config: FleetConfig,
    models: DeviceModels,
    device: DeviceProfile,
    method: str,
    session,
    state: CacheState,
) -> Ask:
    """The policy's decision for this session, with the drift score it was taken on."""
    policy = config.policy(method, device.backbone)
    assert policy is not None
    fingerprint, drift = None, math.nan
    if policy.needs_drift:
        fingerprint = models.fingerprint(method, realtime_input(session))
        drift = drift_score(fingerprint, state.fingerprint)
    return Ask(policy.label, policy.decide(state, drift), drift, state.age(), fingerprint)


def settle(
    asks: Mapping[str, Ask],
    received: Mapping[str, Generated],
    cache: Mapping[str, CacheState],
) -> dict[str, Generated | None]:
    """Update what the device keeps after this session's requests (``received``, by the
    methods that asked) and return what each generated method scores with: what it received,
    else its cached set, else None (the global classifier). Per-impression parameters are
    not cached: they belong to this session's positions."""
    gen: dict[str, Generated | None] = dict(received)
    for m, ask in asks.items():
        state = cache[m]
        if m in gen:
            state.requests += 1
            got = gen[m]
            if got is not None and got.params is not None and got.sent is None:
                state.store(got.params, ask.fingerprint, got.version)
        elif state.params is not None:  # kept: scored with what the device holds
            gen[m] = Generated(state.params, 0, 0, 0.0, 0.0, 0, state.version, requests=0)
        else:  # nothing cached and no request: the global classifier
            gen[m] = None
        state.sessions += 1
    return gen
