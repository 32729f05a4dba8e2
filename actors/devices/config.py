"""Everything about a run that a fleet needs besides its devices and data, built by the
runner (simulation/run.py) as plain, picklable values: `FleetConfig` and the `RetryPolicy`
a device follows when the generator does not answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from actors.devices.policies import Always, RequestPolicy
from actors.devices.profiles import NetworkClass
from duet.method import METHODS

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
SETTINGS = ConfigDict(extra="forbid", allow_inf_nan=False)


@pydantic_dataclass(frozen=True, config=SETTINGS)
class RetryPolicy:
    """How hard a device tries the generator before falling back to its global classifier."""

    timeout_s: PositiveFloat = Field(10.0, description="one attempt's timeout")
    retries: Annotated[int, Field(ge=0)] = Field(3, description="attempts after the first")
    backoff_s: PositiveFloat = Field(
        0.1, description="wait before retry i: backoff_s * 2**(i-1), at most max_backoff_s"
    )
    max_backoff_s: PositiveFloat = Field(5.0, description="the longest wait between attempts")
    deadline_s: PositiveFloat = Field(
        30.0, description="no attempt starts past this (from the first): the device falls back"
    )

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Exponential backoff, or the server's ``Retry-After`` when longer; capped either way."""
        backoff = self.backoff_s * 2 ** (attempt - 1)
        return min(max(backoff, retry_after_s or 0.0), self.max_backoff_s)


@pydantic_dataclass(frozen=True, config=SETTINGS)
class FleetPlay:
    """How a fleet actor plays its devices."""

    max_in_flight: PositiveInt = Field(512, description="concurrent device sessions per actor")
    devices_alive: PositiveInt = Field(
        4096,
        description="devices (and their replays) held at once per actor; the rest wait their "
        "turn, read a block at a time (a paced fleet holds every device)",
    )


@pydantic_dataclass(frozen=True, config=SETTINGS)
class RequestBatching:
    """How a fleet gathers its devices' generator requests into columnar batches."""

    dtype: Literal["float32", "float16"] = Field(
        "float32", description="of the downloaded parameters"
    )
    batch_wait_s: NonNegative = Field(
        0.01, description="how long a batch waits for more devices before it is sent"
    )
    max_batch_devices: PositiveInt = Field(1024, description="devices per columnar request")


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
    play: FleetPlay = field(default_factory=FleetPlay)
    batching: RequestBatching = field(default_factory=RequestBatching)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    score_batch_sessions: int = 64  # sessions scored in one forward (throughput, not a setting)
    # wall seconds per virtual second at which sessions start (the arrival mode's,
    # actors/devices/arrivals.py); 0: as fast as the fleet plays
    pacing: float = 0.0
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
