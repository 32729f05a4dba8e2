"""plan_fleets without Ray: the same devices for the same seed, every device in exactly one
fleet, shift groups from the `devices:` blocks, and the rows each method owes."""

from __future__ import annotations

import pytest

from simulation.fleet_plan import plan_fleets
from simulation.scenario_file import load_scenario


@pytest.fixture
def scenario(scenario_file):
    path = scenario_file(
        fleet={
            "devices": 40,
            "sessions_per_device": 3,
            "actors": 3,
            "profiles": {"availability": {"online": 0.7, "churn": 0.1}},
        },
        shifts=[
            {"operator": "genre_shift", "devices": {"fraction": 0.5}, "at_session": 1},
            {"operator": "click_noise", "devices": {"fraction": 0.5}, "at_session": 2},
            {"operator": "user_swap", "devices": {"fraction": 0.25}, "at_session": 1},
        ],
    )
    return load_scenario(path)


def test_the_plan_is_a_pure_function_of_the_scenario(scenario):
    users = list(range(12))
    a, b = plan_fleets(scenario, users), plan_fleets(scenario, users)
    assert a == b and len(a.devices) == 40
    assert {d.user_id for d in a.devices} <= set(users)


def test_every_device_is_in_one_fleet_and_shift_groups_follow_their_blocks(scenario):
    plan = plan_fleets(scenario, list(range(12)))
    by_fleet = [plan.devices_of(k) for k in range(plan.fleets)]
    ids = sorted(d.device_id for fleet in by_fleet for d in fleet)
    assert ids == sorted(d.device_id for d in plan.devices) and len(set(ids)) == 40
    assert all(plan.fleet_of(d) == k for k, fleet in enumerate(by_fleet) for d in fleet)
    first = {d.device_id for d in plan.devices if 0 in d.shifts}
    second = {d.device_id for d in plan.devices if 1 in d.shifts}
    assert first == second  # identical `devices:` blocks select the same devices
    assert 15 <= len(first) <= 25 and {d.device_id for d in plan.devices if 2 in d.shifts} != first
    expected = plan.expected(["base", "duet"])
    assert expected["base"] == expected["duet"] == sum(d.num_sessions for d in plan.devices)
    assert expected["base"] < 40 * 3  # availability drops sessions


def test_no_users_is_refused(scenario):
    with pytest.raises(ValueError, match="no test sessions"):
        plan_fleets(scenario, [])
