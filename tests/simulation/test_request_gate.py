"""The learned policy's gate: fitted on pairs of training sessions, cached with its size and
work per decision, and refitted only when its checkpoint or settings change."""

from __future__ import annotations

import dataclasses
import json

from actors.devices.policies import PolicyTraining
from actors.devices.request_gate import GATE_FEATURES, Learned, fit_gate


def test_the_gate_is_fitted_on_training_pairs_and_cached(prepared, checkpoints, tmp_path):
    path = tmp_path / "gate.json"
    policy = Learned(pairs=300)
    training = PolicyTraining(prepared, checkpoints["base"], checkpoints["duet"], path)
    gate = fit_gate(policy, dataclasses.replace(training, progress=False))
    report = json.loads(path.read_text())
    assert len(gate.weights) == len(GATE_FEATURES) + 1 == report["parameters"]
    assert 0 < report["training_pairs"] <= 300 and 0 <= report["fresh_better_rate"] <= 1
    assert report["flops_per_decision"] > 0 and report["features"] == list(GATE_FEATURES)
    assert 0 <= gate.probability(0.3, 1) <= 1
    path.write_text(json.dumps({**report, "weights": [0.0, 0.0, 7.0]}))  # a cached fit is reused
    again = fit_gate(policy, training)
    assert again.weights == (0.0, 0.0, 7.0)
    refit = fit_gate(Learned(pairs=200), dataclasses.replace(training, progress=False))
    assert refit.weights != (0.0, 0.0, 7.0) and json.loads(path.read_text())["pairs"] == 200
