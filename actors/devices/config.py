"""Everything about a run that a fleet needs besides its devices and data, built by the
runner (simulation/run.py) as plain, picklable values: `FleetConfig` and the `RetryPolicy`
a device follows when the generator does not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from actors.devices.policies import Always, RequestPolicy
from actors.devices.profiles import NetworkClass
from duet.method import METHODS


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a device tries the generator before falling back to its global classifier."""

    timeout_s: float = 10.0  # one attempt
    retries: int = 3  # attempts after the first
    backoff_s: float = 0.1  # wait before retry i is backoff_s * 2**i, at most max_backoff_s
    max_backoff_s: float = 5.0
    deadline_s: float = 30.0  # no attempt starts past this, counted from the first

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Exponential backoff, or the server's ``Retry-After`` when longer; capped either way."""
        backoff = self.backoff_s * 2 ** (attempt - 1)
        return min(max(backoff, retry_after_s or 0.0), self.max_backoff_s)


@dataclass(frozen=True)
class FleetConfig:
    """Everything about a run that a fleet needs besides its devices and data."""

    run_id: str
    scenario: str
    dataset: str
    methods: tuple[str, ...]  # the run's method names, as rows carry them
    sessions_per_device: int
    model_keys: Mapping[str, str]  # "<backbone>/<method>" -> generator model key
    network_classes: Mapping[str, NetworkClass]
    compute_tiers: Mapping[str, float]
    seed: int = 0
    max_in_flight: int = 512
    # devices simulated at once (their tasks and replays held); the rest wait their turn and
    # their replays are read a block at a time, so a fleet of 50,000 devices holds a few
    # thousand. A paced fleet keeps every device alive: they sleep through think times.
    devices_alive: int = 4096
    pace: float = 0.0  # wall seconds per virtual second of think time
    dtype: str = "float32"
    batch_wait_s: float = 0.01
    max_batch_devices: int = 1024
    score_batch_sessions: int = 64
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # name -> registered method (duet/method.py); a name missing here is its own
    method_of: Mapping[str, str] = field(default_factory=dict)
    # "<backbone>/<name>" -> the request policy of a generated method, fitted on the training
    # sessions (RequestPolicy.fit); a generated name missing here asks every session
    policies: Mapping[str, RequestPolicy] = field(default_factory=dict)

    def policy(self, name: str, backbone: str) -> RequestPolicy | None:
        """The request policy of ``name`` on ``backbone``'s devices; None for a method the
        cloud does not generate."""
        if not METHODS[self.method_of.get(name, name)].generated:
            return None
        return self.policies.get(f"{backbone}/{name}") or Always()

    @property
    def generated(self) -> tuple[str, ...]:
        """The names whose parameters the cloud generates."""
        return tuple(m for m in self.methods if METHODS[self.method_of.get(m, m)].generated)
