"""What a simulated device computes locally, batched across a fleet's devices: frozen-backbone
features, scores with the global / fine-tuned / received classifier, per-session metrics,
and the measured cost of doing it for one session alone.

A fleet computes many devices' sessions in one forward for throughput, but a phone scores
its own session alone. So the on-device times on the virtual clock come from `calibrate`:
one session timed alone on this CPU (median of a few runs), per sample for scoring, per
session for fine-tuning (real Adam steps), then scaled by the device's compute tier.

Notation used for tensor shapes: U sessions, B scored rows, N rows of the longest session,
F features, E target embedding dim, C classes, O/I a dynamic layer's output/input width.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from actors.devices.replay import NOT_SCORED, Replay, build_samples
from actors.storage.uris import materialize
from duet.adaptation import Adaptation, FinetuneConfig
from duet.checkpoint import load_checkpoint
from duet.data import ClickSamples, Samples
from duet.dynamic import Params
from duet.method import METHODS, Method
from duet.metrics import grouped_auc
from duet.model import DeviceModel

MAX_ROWS = 8192  # rows per backbone forward: DIN holds (rows, L, 4E) floats at once
NumpyParams = list[tuple[np.ndarray, np.ndarray]]  # one device's (W (O, I), b (O,)) per layer


@dataclass(frozen=True)
class SessionScore:
    """One method's result on one session."""

    auc: float  # NaN when the session has a single class
    accuracy: float  # images; NaN for clicks
    logloss: float
    num_samples: int


@dataclass(frozen=True)
class Costs:
    """On-device seconds on one core of this machine, before the compute-tier factor."""

    inference_s_per_sample: dict[str, float]  # by method
    embed_s: dict[str, float]  # computing the upload in embedding mode, by generated method
    device_s: dict[str, float]  # on-device work besides scoring (fine-tuning), by method


class Received(Protocol):
    """What a device got from the generator for one session (actors.devices.gateway.Generated):
    one parameter set, or with ``sent`` one per impression (positions where it is True)."""

    params: NumpyParams | None
    sent: np.ndarray | None


class DeviceModels:
    """The checkpoints of one backbone as a device holds them, each with its own frozen
    backbone, and the method (duet/method.py) each name of the run scores with.

    Args:
        checkpoints (Mapping[str, str | Path]): name -> run directory (a path, or a URI
            copied to this node's cache); needs ``base``. A
            name without an entry uses the checkpoint its method adapts (``finetune`` ->
            base's).
            Names sharing a directory share one loaded model.
        finetune (FinetuneConfig): the ``finetune`` baseline's steps and learning rate.
        method_of (Mapping[str, str] | None): name -> registered method, for names that are
            not themselves registered (``duet-history`` -> ``duet``).
        max_rows (int): rows per backbone forward. Default: 8192.
    """

    def __init__(
        self,
        checkpoints: Mapping[str, str | Path],
        finetune: FinetuneConfig,
        method_of: Mapping[str, str] | None = None,
        max_rows: int = MAX_ROWS,
    ):
        if "base" not in checkpoints:
            raise ValueError(f"DeviceModels needs a 'base' checkpoint, got {sorted(checkpoints)}")
        loaded: dict[Path, DeviceModel] = {}
        self.models: dict[str, DeviceModel] = {}
        for name, directory in checkpoints.items():
            key = materialize(directory).resolve()
            if key not in loaded:
                loaded[key] = load_checkpoint(key)[0].requires_grad_(False)
            self.models[name] = loaded[key]
        self.finetune, self.max_rows = finetune, max_rows
        self.method_of = dict(method_of or {})
        self._methods: dict[str, Method] = {}

    def method(self, name: str) -> Method:
        """The method instance ``name`` runs."""
        if name not in self._methods:
            cls = METHODS[self.method_of.get(name, name)]
            self._methods[name] = cls(Adaptation(finetune=self.finetune))
        return self._methods[name]

    def model_for(self, name: str) -> DeviceModel:
        """The model ``name`` scores with: its own checkpoint, else the one its method
        adapts."""
        return self.models.get(name) or self.models[self.method(name).trained_as()]

    @torch.inference_mode()
    def embed(self, method: str, realtime: Tensor) -> tuple[Tensor, Tensor]:
        """Embedding-mode upload of U devices: (U, R, In) inputs and (U, R) mask."""
        return self.model_for(method).device_inputs(realtime)

    @torch.inference_mode()
    def fingerprint(self, method: str, realtime: Tensor) -> np.ndarray | None:
        """The mean embedding (images: feature) of one session's real-time samples (1, ...),
        what a request policy's drift score compares; None without real-time samples."""
        emb, mask = self.embed(method, realtime)
        if not bool(mask.any()):
            return None
        return emb[0][mask[0]].double().mean(0).numpy()

    def score(
        self,
        replays: Sequence[Replay],
        sessions: Sequence,
        methods: Sequence[str],
        received: Mapping[str, Sequence[Received | None]],
    ) -> list[dict[str, SessionScore]]:
        """Score U sessions with every method; ``received[m][u]`` is what device u got from
        the generator for method m (a parameter set, or one per impression); its params
        None, or no entry, means m's global classifier (the fallback)."""
        samples = build_samples(replays, sessions)
        U = len(sessions)
        out: list[dict[str, SessionScore]] = [{} for _ in range(U)]
        features: dict[int, tuple[Tensor, Tensor | None]] = {}
        for method in methods:
            model = self.model_for(method)
            if id(model) not in features:  # base and the adapted methods share the base model
                features[id(model)] = self._features(model, samples)
            got = received.get(method)
            if got is not None and any(r is not None and r.sent is not None for r in got):
                logits = _score_rows(model, *features[id(model)], _row_params(model, samples, got))
            else:
                keys = torch.tensor([r.source_session for r in replays])
                sets = [_received_params(r) for r in got or ()]
                params = self.method(method).session_params(model, samples, keys, sets)
                logits = _score_sessions(model, *features[id(model)], samples.session, params)
            for u, score in enumerate(session_scores(logits, samples, U)):
                out[u][method] = score
        return out

    @torch.inference_mode()
    def _features(self, model: DeviceModel, samples: Samples) -> tuple[Tensor, Tensor | None]:
        """Backbone output of every row, ``max_rows`` at a time: (B, F), (B, E) or None."""
        chunks = [
            model.features(samples.index(idx))
            for idx in torch.arange(len(samples)).split(self.max_rows)
        ]
        feat = torch.cat([f for f, _ in chunks])
        targets = [t for _, t in chunks]
        temb = None if targets[0] is None else torch.cat(targets)  # type: ignore[arg-type]
        return feat, temb

    def calibrate(self, replay: Replay, methods: Sequence[str], repeats: int = 5) -> Costs:
        """Time one session alone per method (median of ``repeats`` after a warm-up)."""
        one = build_samples([replay], [replay.session])
        timed: dict[int, float] = {}  # base and finetune score with the same model: time it once
        for m in methods:
            model = self.model_for(m)
            if id(model) not in timed:
                timed[id(model)] = self._scoring_s(model, one, repeats) / len(one)
        per_sample = {m: timed[id(self.model_for(m))] for m in methods}
        embed = {
            m: _median_s(partial(self.embed, m, one.realtime), repeats)
            for m in methods
            if self.model_for(m).generates
        }
        device_s = {}
        for m in methods:
            work = self.method(m).device_work(self.model_for(m), one)
            device_s[m] = _median_s(work, repeats) if work is not None else 0.0
        return Costs(per_sample, embed, device_s)

    def _scoring_s(self, model: DeviceModel, one: Samples, repeats: int) -> float:
        def score() -> Tensor:
            feat, temb = self._features(model, one)
            return _score_sessions(model, feat, temb, one.session, model.classifier.params(1))

        return _median_s(score, repeats)


def _median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def _tensor(x: np.ndarray) -> Tensor:
    return torch.from_numpy(x.astype(np.float32))


def _received_params(got: Received | None) -> Params | None:
    """One device's received set as tensors, (O, I) and (O,) per layer; None for none."""
    if got is None or got.params is None:
        return None
    return [(_tensor(w), _tensor(b)) for w, b in got.params]


def _row_params(
    model: DeviceModel, samples: ClickSamples, received: Sequence[Received | None]
) -> Params:
    """(B, O, I) per layer: each row's impression's received set; global where it has none
    (a fallback, or a position whose empty history was not sent)."""
    B = len(samples)
    params = [(w.detach().clone(), b.detach().clone()) for w, b in model.classifier.params(B)]
    session, position = samples.session.numpy(), samples.position.numpy()
    for u, got in enumerate(received):
        if got is None or got.params is None or got.sent is None:
            continue
        slot = np.cumsum(got.sent) - 1  # position -> its row of the received sets
        rows = np.flatnonzero((session == u) & got.sent[position])
        which = slot[position[rows]]
        for (w, b), (rw, rb) in zip(params, got.params, strict=True):
            w[rows], b[rows] = _tensor(rw[which]), _tensor(rb[which])
    return params


@torch.inference_mode()
def _score_rows(model: DeviceModel, feat: Tensor, temb: Tensor | None, params: Params) -> Tensor:
    """Logits of every row with its own parameters (B, O, I): per-impression generation."""
    return model.score(feat[:, None], None if temb is None else temb[:, None], params)[:, 0]


@torch.inference_mode()
def _score_sessions(
    model: DeviceModel, feat: Tensor, temb: Tensor | None, session: Tensor, params: Params
) -> Tensor:
    """Logits of every row with its own session's parameters (`DeviceModel.score_grouped`)."""
    return model.score_grouped(feat, temb, session, params)


def session_scores(logits: Tensor, samples: Samples, U: int) -> list[SessionScore]:
    """AUC, accuracy, logloss and sample count of each of U sessions (rows' ``session`` = u);
    click rows labelled ``NOT_SCORED`` (actors/devices/replay.py) are left out."""
    if isinstance(samples, ClickSamples):
        scored = samples.label != NOT_SCORED
        logits, labels, session = logits[scored], samples.label[scored], samples.session[scored]
    else:
        labels, session = samples.label, samples.session
    session, y = session.numpy(), labels.numpy()
    counts = np.bincount(session, minlength=U)
    if isinstance(samples, ClickSamples):
        x = logits.double()
        loss = F.binary_cross_entropy_with_logits(x, labels.double(), reduction="none").numpy()
        auc_values, dense = grouped_auc(x.numpy(), y, session)
        groups = np.unique(session)[dense]  # grouped_auc names groups by dense rank
        accuracy = np.full(U, np.nan)
    else:
        logp = torch.log_softmax(logits.double(), dim=1).numpy()  # (B, C)
        loss = -logp[np.arange(len(y)), y]
        accuracy = np.bincount(session, weights=logp.argmax(1) == y, minlength=U) / np.maximum(
            counts, 1
        )
        auc_values, groups = _image_session_auc(logp, y, session, U)
    auc = np.full(U, np.nan)
    auc[groups] = auc_values
    logloss = np.bincount(session, weights=loss, minlength=U) / np.maximum(counts, 1)
    return [
        SessionScore(float(auc[u]), float(accuracy[u]), float(logloss[u]), int(counts[u]))
        for u in range(U)
    ]


def _image_session_auc(logp: np.ndarray, y: np.ndarray, session: np.ndarray, U: int):
    """Macro one-vs-rest AUC per session over the classes it has both ways; a video of one
    class has none (NaN)."""
    C = logp.shape[1]
    onehot = np.eye(C)[y]
    keys = np.tile(session, C) * C + np.repeat(np.arange(C), len(y))  # (session, class) groups
    per, dense = grouped_auc(logp.T.ravel(), onehot.T.ravel(), keys)
    owner = np.unique(keys)[dense] // C
    sums = np.bincount(owner, weights=per, minlength=U)
    n = np.bincount(owner, minlength=U)
    valid = np.flatnonzero(n)
    return sums[valid] / n[valid], valid
