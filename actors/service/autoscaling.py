"""The generator's autoscaling: Ray Serve's own autoscaler, configured from a scenario's
``generator.autoscaling`` (no scaling logic of ours). Serve adds replicas when the ongoing
requests per replica stay above ``target_ongoing_requests`` for ``upscale_delay_s`` and removes
them when they stay below it for ``downscale_delay_s``.

Pydantic only, no Ray import, so `duet-sim validate` checks it without starting anything.
The defaults are ours, for simulated runs of minutes: Serve's own (a 30 s upscale and a 10
minute downscale delay, metrics every 10 s) suit services that run for days.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Interval = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Autoscaling:
    """Bounds and reaction times of the generator's replica count (Serve's AutoscalingConfig)."""

    min_replicas: Annotated[int, Field(ge=1)] = Field(1, description="replicas at least")
    max_replicas: Annotated[int, Field(ge=1)] = Field(2, description="replicas at most")
    target_ongoing_requests: Interval = Field(
        2.0, description="ongoing requests per replica Serve scales to keep"
    )
    upscale_delay_s: Seconds = Field(
        5.0, description="how long load stays high before a replica is added"
    )
    downscale_delay_s: Seconds = Field(
        30.0, description="how long load stays low before one is removed"
    )
    metrics_interval_s: Interval = Field(1.0, description="how often replicas report their load")
    look_back_period_s: Interval = Field(5.0, description="the window the load is averaged over")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})"
            )
        return self

    def serve_config(self) -> dict[str, Any]:
        """The ``autoscaling_config`` of `serve.deployment` (ray.serve.config.AutoscalingConfig)."""
        from dataclasses import asdict

        return asdict(self)
