"""Request policies: when a device asks the cloud for fresh parameters, decided on the device.

A generated method's device keeps its last parameters between sessions, with the session
they were generated at and a fingerprint of the real-time samples they were generated from
(`CacheState`). At each session start its policy decides (`Decision`): request fresh
parameters, keep the cached ones, or, with nothing cached, score with the global classifier.
Every decision has a reason, which rows and Prometheus carry:

- ``requested``: the policy asked for fresh parameters (whether they arrived is ``fallback``);
- ``cached``: it kept the cached ones;
- ``budget_exhausted``: it would have asked, but its budget is spent;
- ``no_cache``: it did not ask and had nothing cached: the global classifier.

Policies are registered classes (:data:`POLICIES`, the registry shape of duet/registry.py,
keyed by their ``type``) and pydantic models, so a scenario's ``policy:`` is validated field
by field with its path and line, a plugin's policies included. A policy that learns from the
training sessions (``learned``'s gate) does so in :meth:`RequestPolicy.fit`, before any device
plays, and carries what it learned: a device only calls ``decide``.

The drift score is the cosine distance between the mean embedding (or image feature) of the
session's real-time samples and the one the cached parameters were generated from,
computed on the device from what embedding mode would upload (`DeviceModel.device_inputs`).

Policies IntellectReq (WWW 2024) motivates: ``every_k`` (a schedule), ``drift`` (a
threshold on the drift score), ``budget`` (a fraction of sessions, spent where the drift
score is highest) and ``learned`` (a logistic gate the cloud trains on the training sessions
to predict whether fresh parameters would beat the cached ones; it lives with its gate in
actors/devices/request_gate.py).
``per_impression`` is the history conditioning of the authors' code: one request per
scored impression, nothing cached.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WrapValidator

from duet.registry import Registry

REASONS = ("requested", "cached", "budget_exhausted", "no_cache")


@dataclass
class CacheState:
    """One device's cached parameters for one method, and what its policy remembers."""

    params: Any = None  # NumpyParams of the last successful generation, or None
    version: str = ""  # the weights version that generated them
    fingerprint: np.ndarray | None = None  # mean real-time embedding they were generated from
    generated_at: int = -1  # how many sessions the device had played when they were generated
    sessions: int = 0  # sessions played with this method before the current one
    requests: int = 0  # requests made
    drifts: list[float] = field(default_factory=list)  # drift scores seen (budget's quantile)

    def age(self) -> int:
        """Sessions the device has played since the cached parameters were generated (a
        device skips sessions it is offline for); -1 with nothing cached."""
        return self.sessions - self.generated_at if self.params is not None else -1

    def store(self, params: Any, fingerprint: np.ndarray | None, version: str) -> None:
        """Keep a fresh set, generated for the session being played now."""
        self.params, self.fingerprint, self.generated_at = params, fingerprint, self.sessions
        self.version = version


@dataclass(frozen=True)
class Decision:
    request: bool
    reason: str  # one of REASONS


REQUEST = Decision(True, "requested")


def drift_score(fingerprint: np.ndarray | None, cached: np.ndarray | None) -> float:
    """Cosine distance in [0, 2] between two mean embeddings; inf when either is missing
    (nothing cached, or a session without real-time samples), so a policy asks."""
    if fingerprint is None or cached is None:
        return math.inf
    norm = float(np.linalg.norm(fingerprint) * np.linalg.norm(cached))
    return 1.0 - float(fingerprint @ cached) / norm if norm > 0 else math.inf


@dataclass(frozen=True)
class PolicyTraining:
    """What a policy may learn from before any device plays: the prepared data (its training
    sessions, never the replayed ones), the checkpoints of ``base`` and of the method it
    decides for, a file to cache what it learned in, and the run's seed."""

    prepared: Path
    base_dir: str
    method_dir: str
    cache: Path
    seed: int = 0
    progress: bool = True


class RequestPolicy(BaseModel):
    """A policy's YAML fields (``type`` picks the class) and its on-device rule.

    Class attributes: ``needs_drift`` (the device computes the drift score for it) and
    ``per_impression`` (one request per scored impression: history conditioning).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    needs_drift: ClassVar[bool] = False
    per_impression: ClassVar[bool] = False

    @property
    def label(self) -> str:
        """The policy with its settings, as rows, the summary and Prometheus name it."""
        fields = self.model_dump(exclude={"type"})
        settings = ",".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return f"{self.type}({settings})" if settings else self.type

    @abstractmethod
    def decide(self, state: CacheState, drift: float) -> Decision:
        """Whether the device asks for fresh parameters at this session start."""

    def fit(self, training: PolicyTraining) -> RequestPolicy:
        """This policy with what it learns from the training sessions (default: nothing)."""
        return self


POLICIES: Registry[RequestPolicy] = Registry(
    "request policy",
    RequestPolicy,
    builtins=("actors.devices.policies", "actors.devices.request_gate"),
    key=lambda cls: cls.model_fields["type"].default,
)


@POLICIES.register()
class Always(RequestPolicy):
    """Ask at every session start (the paper's protocol, and the reference of every policy)."""

    type: Literal["always"] = "always"

    def decide(self, state: CacheState, drift: float) -> Decision:
        return REQUEST


@POLICIES.register()
class EveryK(RequestPolicy):
    """Ask on every k-th session the device plays (its 1st, (k+1)-th, ...), or when nothing
    is cached; keep the cached parameters otherwise."""

    type: Literal["every_k"] = "every_k"
    k: Annotated[int, Field(gt=0, strict=True)] = Field(
        description="ask on the device's 1st, (k+1)-th, ... session"
    )

    def decide(self, state: CacheState, drift: float) -> Decision:
        due = state.params is None or state.sessions % self.k == 0
        return REQUEST if due else Decision(False, "cached")


@POLICIES.register()
class Drift(RequestPolicy):
    """Ask when the drift score exceeds ``threshold`` (or nothing is cached)."""

    type: Literal["drift"] = "drift"
    threshold: Annotated[float, Field(gt=0, le=2, strict=True)] = Field(
        description="the drift score (a cosine distance) above which it asks"
    )
    needs_drift: ClassVar[bool] = True

    def decide(self, state: CacheState, drift: float) -> Decision:
        return REQUEST if drift > self.threshold else Decision(False, "cached")


@POLICIES.register()
class Budget(RequestPolicy):
    """At most ``ceil(fraction * n)`` requests in a device's first n sessions, spent where
    the drift score is highest: a session asks when its score is at least the (1 - fraction)
    quantile of the scores the device has seen so far (its first session always qualifies:
    nothing is cached) and budget is left."""

    type: Literal["budget"] = "budget"
    fraction: Annotated[float, Field(gt=0, le=1, strict=True)] = Field(
        description="the share of its sessions a device may ask at"
    )
    needs_drift: ClassVar[bool] = True

    def decide(self, state: CacheState, drift: float) -> Decision:
        left = math.ceil(self.fraction * (state.sessions + 1)) - state.requests
        if state.params is None:
            return REQUEST if left > 0 else Decision(False, "no_cache")
        if math.isfinite(drift):
            state.drifts.append(drift)
        high = not state.drifts or drift >= float(np.quantile(state.drifts, 1.0 - self.fraction))
        if not high:
            return Decision(False, "cached")
        return REQUEST if left > 0 else Decision(False, "budget_exhausted")


@POLICIES.register()
class PerImpression(RequestPolicy):
    """One request per scored impression, each conditioned on its own click history (the
    authors' code; ``condition: history``): nothing is cached."""

    type: Literal["per_impression"] = "per_impression"
    per_impression: ClassVar[bool] = True

    def decide(self, state: CacheState, drift: float) -> Decision:
        return REQUEST


def _registered_policy(value: Any, handler: Any) -> RequestPolicy:
    """A scenario's ``policy:`` as the registered class its ``type`` names, read at
    validation time so a plugin's policies are accepted; field errors keep their path."""
    if isinstance(value, RequestPolicy):
        return value
    if not isinstance(value, dict) or "type" not in value:
        raise ValueError(f"policy needs a type, one of {list(POLICIES)}")
    return POLICIES[value["type"]].model_validate(value)


# a scenario's ``policy:``: one of the registered policies, picked by its ``type``
PolicySpec = Annotated[Any, WrapValidator(_registered_policy)]
