"""Arrival modes: when each device's sessions start, on the virtual clock and on the wall.

A scenario's ``fleet.arrivals`` picks one registered mode by its ``type`` (the registry shape
of duet/registry.py, as request policies are; a plugin registers its own):

- ``think`` (the default): each device waits exponential think times between its sessions;
  not paced on the wall unless ``pace`` is set (demos).
- ``trace``: each session starts at its recorded ``start_ts`` (shifted so the replay starts
  at 0, optionally a window of the trace), compressed ``speedup`` times on the wall clock, so
  the generator sees the trace's own bursts and lulls.
- ``poisson``: sessions arrive at ``rate_per_s`` across the fleet.
- ``diurnal``: a Poisson rate following a 24-hour profile (given, or the hour-of-day counts
  of a prepared dataset with timestamps), for data without timestamps (CK+, synthetic).

Every mode gives virtual start times (the time axis of every row) and the wall seconds per
virtual second the fleet paces them at (0: as fast as the fleet plays). Draws come from the
generator the fleet plan passes, so a seed gives the same schedule.

Notation used for array shapes: D devices, S session slots per device.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, WrapValidator, model_validator

from duet.registry import Registry

DAY_S = 86_400
HOURS = 24


class Arrival(BaseModel):
    """An arrival mode's YAML fields (``type`` picks the class) and its schedule.

    ``timestamps``: it reads the replayed sessions' recorded start times (the dataset must
    have them).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    timestamps: ClassVar[bool] = False

    @abstractmethod
    def starts(
        self, rng: np.random.Generator, shape: tuple[int, int], recorded: np.ndarray | None
    ) -> np.ndarray:
        """(D, S) virtual start seconds of every device's session slots, non-decreasing per
        device; NaN for a slot the mode leaves out (outside a trace's window). ``recorded``
        (D, S) holds the replayed sessions' recorded start times (NaN past a user's last),
        for modes that read them."""

    def wall_per_virtual_s(self) -> float:
        """Wall seconds per virtual second the fleet paces starts at; 0: not paced."""
        return 0.0


ARRIVALS: Registry[Arrival] = Registry(
    "arrival mode",
    Arrival,
    builtins="actors.devices.arrivals",
    key=lambda cls: cls.model_fields["type"].default,
)

Speedup = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@ARRIVALS.register()
class Think(Arrival):
    """Exponential think times before every slot (the virtual clock alone, by default)."""

    type: Literal["think"] = "think"
    mean_gap_s: Annotated[float, Field(ge=0)] = Field(
        3600.0, description="mean virtual think time before a session"
    )
    pace: Annotated[float, Field(ge=0)] = Field(
        0.0, description="wall seconds per virtual second of think time; 0: no pacing"
    )

    def starts(self, rng, shape, recorded):  # noqa: ANN001, ANN201
        return np.cumsum(rng.exponential(self.mean_gap_s, shape), axis=1)

    def wall_per_virtual_s(self) -> float:
        return self.pace


@ARRIVALS.register()
class Trace(Arrival):
    """The replayed sessions' recorded start times, compressed ``speedup`` times."""

    type: Literal["trace"] = "trace"
    speedup: Speedup = Field(description="virtual (recorded) seconds per wall second")
    window_start_s: Annotated[float, Field(ge=0)] = Field(
        0.0, description="where the replay starts, seconds into the trace"
    )
    window_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="how much of the trace to replay, from window_start_s; none: all"
    )
    timestamps: ClassVar[bool] = True

    def starts(self, rng, shape, recorded):  # noqa: ANN001, ANN201
        if recorded is None:
            raise ValueError("a trace replays recorded start times: the dataset has none")
        t = recorded - np.nanmin(recorded) - self.window_start_s
        end = np.inf if self.window_s is None else self.window_s
        return np.where((t >= 0) & (t < end), t, np.nan)

    def wall_per_virtual_s(self) -> float:
        return 1.0 / self.speedup


def _to_slots(rng: np.random.Generator, times: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fleet-wide arrival times (sorted, D * S) dealt to devices at random, each device's
    slots in time order: (D, S)."""
    owner = rng.permutation(np.repeat(np.arange(shape[0]), shape[1]))
    order = np.argsort(owner, kind="stable")  # each device's arrivals, earliest first
    return times[order].reshape(shape)


@ARRIVALS.register()
class Poisson(Arrival):
    """A Poisson process of ``rate_per_s`` sessions per virtual second across the fleet."""

    type: Literal["poisson"] = "poisson"
    rate_per_s: Speedup = Field(description="sessions per virtual second, the whole fleet")
    speedup: Speedup = Field(1.0, description="virtual seconds per wall second")

    def starts(self, rng, shape, recorded):  # noqa: ANN001, ANN201
        gaps = rng.exponential(1.0 / self.rate_per_s, shape[0] * shape[1])
        return _to_slots(rng, np.cumsum(gaps), shape)

    def wall_per_virtual_s(self) -> float:
        return 1.0 / self.speedup


@ARRIVALS.register()
class Diurnal(Arrival):
    """A Poisson process whose rate follows a 24-hour profile (hour 0 is the replay's start):
    ``rate_per_s`` on average, times each hour's weight over the mean weight."""

    type: Literal["diurnal"] = "diurnal"
    rate_per_s: Speedup = Field(description="mean sessions per virtual second, the fleet")
    profile: (
        Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=24, max_length=24)] | None
    ) = Field(None, description="24 hour-of-day weights (need not sum to 1)")
    profile_from: str | None = Field(
        None, description="a prepared dataset with timestamps: its hour-of-day session counts"
    )
    speedup: Speedup = Field(1.0, description="virtual seconds per wall second")

    @model_validator(mode="after")
    def _one_profile(self) -> Diurnal:
        if (self.profile is None) == (self.profile_from is None):
            raise ValueError("diurnal: give exactly one of profile and profile_from")
        if self.profile is not None and sum(self.profile) <= 0:
            raise ValueError(f"profile: weights must have a positive sum, got {self.profile}")
        return self

    def weights(self) -> np.ndarray:
        """The 24 hour-of-day weights, normalized to mean 1."""
        w = np.asarray(
            self.profile if self.profile is not None else hours_of_day(self.profile_from)
        )
        return w / w.mean()

    def starts(self, rng, shape, recorded):  # noqa: ANN001, ANN201
        # time rescaling: unit-rate arrivals on the cumulative intensity, mapped back through
        # its piecewise-linear inverse (one segment per hour)
        hourly = self.rate_per_s * 3600 * self.weights()  # sessions in each hour of a day
        n = shape[0] * shape[1]
        days = int(np.ceil(n / hourly.sum())) + 1
        cumulative = np.concatenate([[0.0], np.cumsum(np.tile(hourly, days))])
        knots = np.arange(len(cumulative)) * 3600.0
        mass = np.cumsum(rng.exponential(1.0, n))
        return _to_slots(rng, np.interp(mass, cumulative, knots), shape)

    def wall_per_virtual_s(self) -> float:
        return 1.0 / self.speedup


def hours_of_day(prepared_dir: str | Path) -> list[float]:
    """The 24 hour-of-day session counts of a prepared dataset, hour 0 its first session's.

    Raises:
        ValueError: the dataset's sessions have no recorded start times.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(Path(prepared_dir) / "sessions.parquet")
    if "start_ts" not in table.column_names:
        raise ValueError(f"{prepared_dir}: its sessions have no recorded start times")
    ts = table["start_ts"].to_numpy()
    hours = ((ts - ts.min()) // 3600 % HOURS).astype(int)
    return np.bincount(hours, minlength=HOURS).astype(float).tolist()


def _registered_arrival(value: Any, handler: Any) -> Arrival:
    """A scenario's ``arrivals:`` as the registered class its ``type`` names (a plugin's
    too), read at validation time; field errors keep their path."""
    if isinstance(value, Arrival):
        return value
    if not isinstance(value, dict) or "type" not in value:
        raise ValueError(f"arrivals needs a type, one of {list(ARRIVALS)}")
    return ARRIVALS[value["type"]].model_validate(value)


# a scenario's ``fleet.arrivals``: one of the registered modes, picked by its ``type``
ArrivalSpec = Annotated[Any, WrapValidator(_registered_arrival)]
