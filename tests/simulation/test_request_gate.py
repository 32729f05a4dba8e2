"""The learned policy's gate: fitted on pairs of training sessions, cached with its size and
work per decision, and refitted only when its checkpoint or settings change."""

from __future__ import annotations

import json

from actors.devices.policies import GATE_FEATURES, Learned
from simulation.request_gate import fit_gate


def test_the_gate_is_fitted_on_training_pairs_and_cached(prepared, checkpoints, tmp_path):
    path = tmp_path / "gate.json"
    policy = Learned(pairs=300)
    gate = fit_gate(
        prepared, checkpoints["base"], checkpoints["duet"], policy, path, progress=False
    )
    report = json.loads(path.read_text())
    assert len(gate.weights) == len(GATE_FEATURES) + 1 == report["parameters"]
    assert 0 < report["training_pairs"] <= 300 and 0 <= report["fresh_better_rate"] <= 1
    assert report["flops_per_decision"] > 0 and report["features"] == list(GATE_FEATURES)
    assert 0 <= gate.probability(0.3, 1) <= 1
    path.write_text(json.dumps({**report, "weights": [0.0, 0.0, 7.0]}))  # a cached fit is reused
    again = fit_gate(prepared, checkpoints["base"], checkpoints["duet"], policy, path)
    assert again.weights == (0.0, 0.0, 7.0)
    refit = fit_gate(
        prepared, checkpoints["base"], checkpoints["duet"], Learned(pairs=200), path, progress=False
    )
    assert refit.weights != (0.0, 0.0, 7.0) and json.loads(path.read_text())["pairs"] == 200
