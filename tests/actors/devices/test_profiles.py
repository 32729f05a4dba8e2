"""Device profiles: drawn shares follow the scenario weights, availability follows online and
churn, groups are exact and seeded, and everything is a function of the seed."""

from __future__ import annotations

import numpy as np
import pytest

from actors.devices.arrivals import Think
from actors.devices.profiles import NETWORK_CLASSES, sample_profiles, select_group

N = 20_000
WEIGHTS = {
    "network": {"4g-5": 1, "4g-15": 1, "5g-50": 2, "5g-100": 4},
    "compute": {"high": 1, "mid": 3, "low": 1},
    "upload": {"raw": 3, "embedding": 1},
    "backbone": {"din": 1, "sasrec": 1},
}


@pytest.fixture(scope="module")
def profiles():
    return sample_profiles(
        N,
        users=[7, 8, 9],
        sessions=4,
        **WEIGHTS,
        online=0.8,
        churn=0.1,
        arrival=Think(mean_gap_s=100.0),
        seed=3,
    )


def test_shares_follow_weights(profiles):
    for key, weights in WEIGHTS.items():
        total = sum(weights.values())
        for value, w in weights.items():
            share = sum(getattr(p, key) == value for p in profiles) / N
            assert abs(share - w / total) < 0.015, (key, value, share)


def test_devices_replicate_users_in_order(profiles):
    assert [p.user_id for p in profiles[:7]] == [7, 8, 9, 7, 8, 9, 7]
    assert [p.device_id for p in profiles[:3]] == [0, 1, 2]


def test_availability_follows_online_and_churn(profiles):
    active = np.array([p.active for p in profiles])  # (N, 4)
    expected = 0.8 * 0.9 ** np.arange(4)  # online, and no churn after any earlier slot
    assert np.abs(active.mean(0) - expected).max() < 0.015
    churned = ~active[:, 1] & active[:, 0]  # left after slot 0 (or offline at 1)
    assert churned.any()


def test_virtual_start_times_accumulate_think_times(profiles):
    starts = np.array([p.start_s for p in profiles])
    assert (np.diff(starts, axis=1) > 0).all()
    assert abs(starts[:, 0].mean() - 100.0) < 3.0  # exponential with mean mean_gap_s


def test_same_seed_same_profiles_other_seed_other_profiles(profiles):
    again = sample_profiles(
        N,
        users=[7, 8, 9],
        sessions=4,
        **WEIGHTS,
        online=0.8,
        churn=0.1,
        arrival=Think(mean_gap_s=100.0),
        seed=3,
    )
    other = sample_profiles(N, users=[7, 8, 9], sessions=4, **WEIGHTS, seed=4)
    assert again == profiles
    assert [p.network for p in other] != [p.network for p in profiles]


def test_select_group_is_exact_filtered_and_seeded(profiles):
    lte = {p.device_id for p in profiles if p.network in ("4g-5", "4g-15")}
    group = select_group(profiles, fraction=0.25, network=["4g-5", "4g-15"], seed=1, salt=5)
    assert group <= lte and len(group) == round(0.25 * len(lte))
    assert group == select_group(profiles, fraction=0.25, network=["4g-5", "4g-15"], seed=1, salt=5)
    assert group != select_group(profiles, fraction=0.25, network=["4g-5", "4g-15"], seed=1, salt=6)
    assert len(select_group(profiles)) == N
    with pytest.raises(ValueError, match="unknown group filter"):
        select_group(profiles, colour=["red"])


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="num_devices >= 1"):
        sample_profiles(
            0,
            [1],
            3,
            network={"4g-5": 1},
            compute={"high": 1},
            upload={"raw": 1},
            backbone={"din": 1},
        )


def test_transfer_time_is_bytes_over_bandwidth_plus_rtt():
    link = NETWORK_CLASSES["4g-5"]
    assert link.transfer_s(5_000_000) == pytest.approx(1.0 + link.rtt_s)
    assert link.transfer_s(0) == link.rtt_s
