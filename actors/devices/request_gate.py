"""The learned request policy (``type: learned``) and its gate, trained in the cloud before
any device plays.

IntellectReq (WWW 2024) decides on the device whether fresh parameters are worth a request.
Here the gate is a logistic regression on what the device knows at session start
(:func:`gate_features`: the drift score of its real-time samples from
those its cached parameters were generated from, and their age), trained on pairs of one
user's *training* sessions (never the replayed test sessions): parameters generated at an
earlier session i - a (a = 1..3, the "cached" set) and at session i (the "fresh" set), both
scoring session i's rows. The label says whether the fresh set scores session i better
(higher AUC; accuracy for images) than the cached one.

The fit is cached in ``OUT/models/gate-<backbone>-<name>.json`` with its size, work per
decision and how well it separates its own training pairs, so a rerun or ``--resume`` does
not refit it and the summary can report it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr

from actors.devices.policies import (
    POLICIES,
    REQUEST,
    CacheState,
    Decision,
    PolicyTraining,
    RequestPolicy,
    drift_score,
)

MAX_AGE = 3  # the cached set is generated 1..MAX_AGE training sessions before the scored one
CHUNK = 256  # pairs scored per batch
RIDGE = 1e-3  # L2 on the logistic weights: separable pairs must not diverge


@dataclass(frozen=True)
class _Set:
    """A generated parameter set as `DeviceModels.score` receives it."""

    params: list[tuple[np.ndarray, np.ndarray]]
    sent: None = None


@dataclass(frozen=True)
class Gate:
    """A trained on-device gate: logistic regression on `gate_features`."""

    weights: tuple[float, ...]  # one per feature, then the bias

    def probability(self, drift: float, age: int) -> float:
        z = float(np.dot(self.weights[:-1], gate_features(drift, age))) + self.weights[-1]
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


GATE_FEATURES = ("drift", "log1p_age")


def gate_features(drift: float, age: int) -> np.ndarray:
    """What the learned gate reads, cheap on the device: the drift score and the cached
    parameters' age in sessions (log1p, since staleness matters most at first)."""
    return np.array([min(drift, 2.0), math.log1p(max(age, 0))])


def gate_cost(embedding_dim: int, realtime: int) -> dict[str, int]:
    """The learned gate's size and work per decision on the device: its parameters, and the
    FLOPs of the mean embedding, the cosine distance and the logistic unit."""
    features = len(GATE_FEATURES)
    flops = realtime * embedding_dim + 6 * embedding_dim + 2 * features + 1
    return {"parameters": features + 1, "flops_per_decision": flops}


@POLICIES.register()
class Learned(RequestPolicy):
    """IntellectReq-style: ask when a small on-device gate predicts that fresh parameters
    would beat the cached ones with probability above ``threshold``. The cloud trains the
    gate at run start on ``pairs`` pairs of training sessions (:func:`fit_gate`)."""

    type: Literal["learned"] = "learned"
    threshold: Annotated[float, Field(gt=0, lt=1, strict=True)] = Field(
        0.5, description="the gate's probability that fresh parameters win, above which it asks"
    )
    pairs: Annotated[int, Field(gt=0, le=100_000, strict=True)] = Field(
        2000, description="pairs of training sessions the gate is fitted on"
    )
    needs_drift: ClassVar[bool] = True
    _gate: Gate | None = PrivateAttr(None)  # set by fit, never by the YAML

    def decide(self, state: CacheState, drift: float) -> Decision:
        if state.params is None:
            return REQUEST
        if self._gate is None:
            raise ValueError("the learned policy needs its trained gate (fit it first)")
        p = self._gate.probability(drift, state.age())
        return REQUEST if p > self.threshold else Decision(False, "cached")

    def fit(self, training: PolicyTraining) -> Learned:
        """The gate trained on pairs of training sessions (:func:`fit_gate`)."""
        return self.with_gate(fit_gate(self, training))

    def with_gate(self, gate: Gate) -> Learned:
        """This policy deciding with ``gate``."""
        fitted = self.model_copy()
        fitted._gate = gate
        return fitted


def fit_gate(policy: Learned, training: PolicyTraining) -> Gate:
    """Train (or reload from ``training.cache``) the gate of a learned policy for one
    checkpoint."""
    from actors.devices.ondevice import DeviceModels
    from actors.devices.replay import load_replays, replayable_users
    from actors.service.served import weights_version
    from actors.storage.uris import materialize
    from duet.adaptation import FinetuneConfig

    prepared, path, seed = training.prepared, training.cache, training.seed
    version = weights_version(materialize(training.method_dir))
    key = {"weights_version": version, "pairs": policy.pairs, "seed": seed}
    if path.is_file():
        cached = json.loads(path.read_text())
        if all(cached.get(k) == v for k, v in key.items()):
            return Gate(tuple(cached["weights"]))
    # scored like a received set: the method's model, the default (global or received) rule
    models = DeviceModels(
        {"base": training.base_dir, "gate": training.method_dir}, FinetuneConfig(), {"gate": "base"}
    )
    model = models.model_for("gate")
    users = replayable_users(prepared, "train").tolist()
    replays = load_replays(prepared, users, "train")
    pairs = _pairs([replays[u] for u in users], policy.pairs, seed)
    from tqdm.auto import tqdm

    rows, labels = [], []
    for start in tqdm(
        range(0, len(pairs), CHUNK),
        desc="training the request gate",
        disable=not training.progress,
    ):
        chunk_rows, chunk_labels = _labelled(models, model, pairs[start : start + CHUNK])
        rows += chunk_rows
        labels += chunk_labels
    if not rows:
        raise ValueError(f"{prepared}: no pair of training sessions to fit the request gate on")
    X, y = np.asarray(rows), np.asarray(labels)
    weights = _logistic(X, y)
    gate = Gate(tuple(float(w) for w in weights))
    path.parent.mkdir(parents=True, exist_ok=True)
    report = _report(key, gate, X, y, _upload_shape(models, pairs[-1][1]))
    path.write_text(json.dumps(report, indent=2) + "\n")
    return gate


def _labelled(models, model, chunk: Sequence[tuple]) -> tuple[list[np.ndarray], list[float]]:
    """The gate's features and label (1: the fresh set scores better) of each (earlier,
    scored, age) pair of ``chunk``; pairs where either set's score is undefined are left out.

    Why in chunks: generating and scoring ``CHUNK`` pairs at once batches the PPG's work.
    """
    earlier, scored = [p[0] for p in chunk], [p[1] for p in chunk]
    cached, cached_fp = _generate(models, model, earlier)
    fresh, fresh_fp = _generate(models, model, scored)
    sessions = [r.session for r in scored]
    outcome = {}
    for label, sets in (("cached", cached), ("fresh", fresh)):
        scores = models.score(scored, sessions, ["gate"], {"gate": sets})
        outcome[label] = [_metric(s["gate"]) for s in scores]
    rows, labels = [], []
    for j, (a, b) in enumerate(zip(outcome["cached"], outcome["fresh"], strict=True)):
        if math.isnan(a) or math.isnan(b):
            continue
        age = chunk[j][2]
        rows.append(gate_features(drift_score(fresh_fp[j], cached_fp[j]), age))
        labels.append(float(b > a))
    return rows, labels


def _report(key: dict, gate: Gate, X: np.ndarray, y: np.ndarray, upload: tuple[int, int]) -> dict:
    """What the gate's cache file holds: ``key`` (what a rerun must match to reuse it), the
    weights, and what the summary reports: how well the gate separates its own training
    pairs, the drift scale and its cost on the device."""
    predicted = np.hstack([X, np.ones((len(X), 1))]) @ np.asarray(gate.weights) > 0
    realtime, dim = upload
    return {
        **key,
        "features": list(GATE_FEATURES),
        "weights": list(gate.weights),
        "training_pairs": len(y),
        "fresh_better_rate": float(y.mean()),
        # the drift scores a device sees between its training sessions: the scale a drift
        # policy's threshold is set on
        "drift_quantiles": {
            f"p{q}": float(np.quantile(X[:, 0], q / 100)) for q in (10, 25, 50, 75, 90)
        },
        "training_accuracy": float((predicted == y.astype(bool)).mean()),
        **gate_cost(dim, realtime),
    }


def _pairs(per_user: Sequence[Sequence], count: int, seed: int) -> list[tuple]:
    """Up to ``count`` (earlier session, scored session, age) triples, drawn uniformly."""
    triples = [
        (sessions[i - a], sessions[i], a)
        for sessions in per_user
        for i in range(1, len(sessions))
        for a in range(1, min(MAX_AGE, i) + 1)
    ]
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(triples))[:count]
    return [triples[i] for i in sorted(pick)]


def _generate(models, model, replays: Sequence) -> tuple[list[_Set], list[np.ndarray | None]]:
    """What the cloud generates for each replay's real-time samples, and the device's
    fingerprint of them."""
    import torch

    from actors.devices.policy_cache import realtime_input

    with torch.inference_mode():
        return _generated_sets(model, torch.cat([realtime_input(r.session) for r in replays]))


def _generated_sets(model, realtime) -> tuple[list[_Set], list[np.ndarray | None]]:
    """The generated set and the mean real-time embedding of each of U sessions' real-time
    samples ``realtime`` (U, R) or (U, C, H, W)."""
    emb, mask = model.device_inputs(realtime)
    conditioned = bool(model.cfg.ppg and model.cfg.ppg.conditioned)
    params = model.generate(
        emb if conditioned else None, mask if conditioned else None, len(realtime)
    )
    sets = [_Set([(w[u].numpy(), b[u].numpy()) for w, b in params]) for u in range(len(realtime))]
    fingerprints = [
        emb[u][mask[u]].double().mean(0).numpy() if bool(mask[u].any()) else None
        for u in range(len(realtime))
    ]
    return sets, fingerprints


def _metric(score) -> float:
    return score.auc if not math.isnan(score.auc) else score.accuracy


def _logistic(X: np.ndarray, y: np.ndarray, steps: int = 50) -> np.ndarray:
    """Ridge logistic regression by Newton's method: (weights..., bias)."""
    A = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(A.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -50, 50)))
        grad = A.T @ (p - y) / len(y) + RIDGE * w
        hess = (A * (p * (1 - p))[:, None]).T @ A / len(y) + RIDGE * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def _upload_shape(models, replay) -> tuple[int, int]:
    """(real-time samples, embedding width) of one session's fingerprint: the gate's work,
    the same for every session (each holds the same number of real-time samples)."""
    from actors.devices.policy_cache import realtime_input

    emb, _ = models.embed("gate", realtime_input(replay.session))
    return int(emb.shape[1]), int(emb.shape[2])
