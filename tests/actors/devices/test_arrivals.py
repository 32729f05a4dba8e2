"""Arrival modes (actors/devices/arrivals.py): the schedules each draws, and a fleet paced on
the wall clock by a small trace: every session starts in the trace's order at its compressed
time, within a stated tolerance, none is lost, and the late ones are counted."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from actors.devices.arrivals import ARRIVALS, Diurnal, Poisson, Think, Trace
from actors.devices.profiles import sample_profiles

from .conftest import SESSIONS
from .test_fleet import expected_sessions, rows_of, run_fleet

# a lightly loaded paced fleet starts a session this close to when it is due (the event
# loop's wake-up and the slot it waits for); a slower start is late
TOLERANCE_S = 0.25


def test_think_draws_the_exponential_schedule_it_always_drew():
    rng, again = np.random.default_rng(5), np.random.default_rng(5)
    starts = Think(mean_gap_s=10.0).starts(rng, (3, 4), None)
    assert np.array_equal(starts, np.cumsum(again.exponential(10.0, (3, 4)), axis=1))
    assert Think().wall_per_virtual_s() == 0.0 and Think(pace=2.0).wall_per_virtual_s() == 2.0


def test_a_trace_replays_recorded_times_from_zero_within_its_window():
    recorded = np.array([[1000.0, 1060.0, np.nan], [1030.0, 1100.0, 1500.0]])
    whole = Trace(speedup=10).starts(None, recorded.shape, recorded)
    assert np.array_equal(whole, recorded - 1000.0, equal_nan=True)
    window = Trace(speedup=10, window_start_s=30, window_s=60).starts(None, (2, 3), recorded)
    assert np.array_equal(window, [[np.nan, 30.0, np.nan], [0.0, np.nan, np.nan]], equal_nan=True)
    assert Trace(speedup=10).wall_per_virtual_s() == pytest.approx(0.1)
    with pytest.raises(ValueError, match="dataset has none"):
        Trace(speedup=10).starts(None, (2, 3), None)


def test_poisson_and_diurnal_arrive_at_their_rates():
    rng = np.random.default_rng(0)
    starts = Poisson(rate_per_s=4.0).starts(rng, (500, 4), None)
    assert (np.diff(starts, axis=1) >= 0).all()
    assert starts.max() / starts.size == pytest.approx(0.25, rel=0.1)  # 4 per virtual second
    busy = [1.0] * 12 + [3.0] * 12
    daily = Diurnal(rate_per_s=1 / 1200, profile=busy).starts(rng, (500, 4), None)  # 28 days
    hours = np.bincount((daily // 3600 % 24).astype(int).ravel(), minlength=24)
    assert hours[12:].sum() / hours[:12].sum() == pytest.approx(3.0, rel=0.15)
    with pytest.raises(ValueError, match="exactly one of profile and profile_from"):
        Diurnal(rate_per_s=1.0)


def test_every_mode_is_registered_by_its_type():
    assert {"think", "trace", "poisson", "diurnal"} <= set(ARRIVALS)
    assert ARRIVALS["trace"].timestamps and not ARRIVALS["diurnal"].timestamps


def _traced(world, speedup: float, recorded: np.ndarray) -> list:
    """The world's devices with the same profile draws, starting by a trace."""
    profiles = sample_profiles(
        len(world["profiles"]),
        sorted({p.user_id for p in world["profiles"]}),
        SESSIONS,
        network={"4g-5": 1},
        compute={"high": 1},
        upload={"raw": 1},
        backbone={"din": 1},
        arrival=Trace(speedup=speedup),
        recorded=recorded,
        seed=0,
    )
    return [dataclasses.replace(p, shifts=()) for p in profiles]


def test_a_paced_trace_starts_every_session_in_order_at_its_compressed_time(world, tmp_path):
    speedup = 100.0  # 3 virtual seconds between sessions: 30 ms of wall clock
    n = len(world["profiles"])
    recorded = (np.arange(n * SESSIONS, dtype=float) * 3.0).reshape(SESSIONS, n).T
    traced = dict(world)
    traced["profiles"] = _traced(world, speedup, recorded)
    run_fleet(traced, tmp_path, pacing=1 / speedup)
    rows = rows_of(tmp_path).filter(pl.col("method") == "base").sort("scheduled_wall")
    assert rows.height == expected_sessions(traced) == n * SESSIONS  # none lost
    due = rows["scheduled_wall"].to_numpy() - rows["scheduled_wall"].min()
    virtual = np.sort(recorded.ravel())
    np.testing.assert_allclose(due, (virtual - virtual[0]) / speedup, atol=1e-6)
    assert (rows["late_s"] <= TOLERANCE_S).all(), rows["late_s"].max()
    assert (np.diff(rows["started_wall"].to_numpy()) > -TOLERANCE_S).all()  # trace order


def test_sessions_the_fleet_cannot_start_on_time_are_late_not_lost(world, tmp_path):
    """Every session due at once, one at a time: all are played, later ones late."""
    traced = dict(world)
    n = len(world["profiles"])
    traced["profiles"] = _traced(world, 100.0, np.zeros((n, SESSIONS)))
    run_fleet(traced, tmp_path, pacing=0.01, max_in_flight=1)
    rows = rows_of(tmp_path).filter(pl.col("method") == "base")
    assert rows.height == n * SESSIONS
    assert (rows["late_s"] > TOLERANCE_S).sum() > n  # the queue falls behind the burst
    assert (rows["started_wall"] - rows["scheduled_wall"] - rows["late_s"]).abs().max() < 1e-9
