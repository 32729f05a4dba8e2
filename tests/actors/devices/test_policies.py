"""Request policies decide on the device, from its cache and the drift score alone: what each
asks for over a device's sessions, and the drift score they read."""

from __future__ import annotations

import math

import numpy as np
import pytest

from actors.devices.policies import (
    POLICIES,
    Always,
    Budget,
    CacheState,
    Drift,
    EveryK,
    drift_score,
)
from actors.devices.request_gate import Gate, Learned, gate_cost


def play(policy, drifts) -> list[str]:
    """A device's decisions over sessions with these drift scores (inf: nothing to compare),
    every request answered."""
    state, out = CacheState(), []
    for drift in drifts:
        decision = policy.decide(state, drift)
        if decision.request:
            state.requests += 1
            state.store("params", np.ones(2), "v1")
        state.sessions += 1
        out.append(decision.reason)
    return out


def test_always_asks_every_session():
    assert play(Always(), [math.inf, 0.0, 0.0]) == ["requested"] * 3


def test_every_k_asks_on_every_kth_session_and_keeps_the_cache_between():
    assert play(EveryK(k=3), [0.0] * 7) == [
        "requested",
        "cached",
        "cached",
        "requested",
        "cached",
        "cached",
        "requested",
    ]


def test_every_k_asks_again_when_nothing_is_cached():
    state = CacheState(sessions=1)  # the first request failed: nothing cached
    assert EveryK(k=3).decide(state, 0.0).reason == "requested"


def test_drift_asks_past_its_threshold():
    assert play(Drift(threshold=0.2), [math.inf, 0.1, 0.3, 0.05]) == [
        "requested",
        "cached",
        "requested",
        "cached",
    ]


def test_budget_spends_at_most_its_fraction_on_the_highest_drift():
    drifts = [math.inf, 0.5, 0.1, 0.9, 0.9, 0.0, 0.8, 0.95]
    reasons = play(Budget(fraction=0.5), drifts)
    requested = [i for i, r in enumerate(reasons) if r == "requested"]
    for n in range(1, len(drifts) + 1):  # never more than ceil(fraction * n) in n sessions
        assert sum(i < n for i in requested) <= math.ceil(0.5 * n)
    assert 0 in requested and 2 not in requested and 5 not in requested  # low drift: kept
    assert "budget_exhausted" in reasons  # a high score came when the budget was spent


def test_budget_with_nothing_cached_and_no_budget_scores_with_the_global_classifier():
    state = CacheState(sessions=1, requests=1)  # asked once, the answer failed
    assert Budget(fraction=0.5).decide(state, math.inf).reason == "no_cache"


def test_learned_asks_when_its_gate_says_fresh_parameters_win():
    says_drift = Gate((40.0, 0.0, -8.0))  # p > 0.5 when drift > 0.2
    fitted = Learned().with_gate(says_drift)
    assert play(fitted, [math.inf, 0.1, 0.3]) == ["requested", "cached", "requested"]
    with pytest.raises(ValueError, match="trained gate"):
        play(Learned(), [math.inf, 0.1])


def test_the_drift_score_is_the_cosine_distance_of_mean_embeddings():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert drift_score(a, a * 3) == pytest.approx(0.0)
    assert drift_score(a, b) == pytest.approx(1.0)
    assert drift_score(a, -a) == pytest.approx(2.0)
    assert drift_score(None, a) == math.inf and drift_score(a, None) == math.inf


def test_every_policy_has_a_label_with_its_settings():
    assert EveryK(k=3).label == "every_k(k=3)"
    assert Always().label == "always"
    assert Learned().label == "learned(threshold=0.5,pairs=2000)"
    assert set(POLICIES) == {"always", "every_k", "drift", "budget", "learned", "per_impression"}


def test_the_gate_is_cheap_on_the_device():
    cost = gate_cost(embedding_dim=32, realtime=10)
    assert cost["parameters"] == 3
    assert cost["flops_per_decision"] < 1000  # a mean, a cosine, a logistic unit
