"""What devices send the generator: the rows each device uploads for one session and the
columnar request that carries a micro-batch of them, with each row's size on the wire.

Session conditioning sends one row per device, its session's real-time clicks or first
frame; history conditioning one row per scored impression, its own click history (the
authors' code); an unconditioned model (the HyperNetwork baseline) one row with no samples.
A row may go raw or, with ``upload == "embedding"``, as the embedding the device computes
(paper Table 3 compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actors.devices.ondevice import DeviceModels
from actors.devices.replay import Replay, click_rows
from actors.service.messages import GenerateBatchRequest
from pipelines.shifts import ClickSession


@dataclass(frozen=True)
class UploadRows:
    """A micro-batch's rows for one model: ``inputs`` (N, ...) the rows that carry samples
    (None for an unconditioned model), ``owner`` (N,) the device (its index in the batch) each
    row is for, and per device ``sent`` (K,) bool, which of its K positions got a row."""

    inputs: np.ndarray | None
    owner: np.ndarray
    sent: list[np.ndarray]


def upload_rows(model, sessions: Sequence[tuple[Replay, Any]]) -> UploadRows:
    """The rows a micro-batch of (replay, shifted session) pairs sends ``model``."""
    conditioned = bool(model.cfg.ppg and model.cfg.ppg.conditioned)
    per_device = [
        _condition_rows(model, r, s) if conditioned else (None, np.ones(1, bool))
        for r, s in sessions
    ]
    owner = np.concatenate([np.full(int(sent.sum()), i) for i, (_, sent) in enumerate(per_device)])
    inputs = None if not conditioned else np.concatenate([x[sent] for x, sent in per_device])
    return UploadRows(inputs, owner, [sent for _, sent in per_device])


def _condition_rows(model, replay: Replay, session) -> tuple[np.ndarray, np.ndarray]:
    """What a device sends a conditioned generator for one session, and which rows carry
    samples: ``(inputs (K, ...), sent (K,) bool)``. Session conditioning: one row, the
    session's real-time clicks or its first frame. History conditioning: one row per
    scored impression, its own click history (the authors' code)."""
    if model.condition == "history":
        history, _, _ = click_rows(replay, session)  # (T, L)
        return history, history.any(axis=1)
    if isinstance(session, ClickSession):
        return session.realtime[None], np.array([session.realtime.any()])
    return session.pixels[:1], np.ones(1, dtype=bool)


def build_request(
    models: DeviceModels, method: str, key: str, mode: str, dtype: str, rows: UploadRows
) -> tuple[GenerateBatchRequest, np.ndarray]:
    """The columnar request (one row per entry of ``rows.owner``, the device it is for) and
    each row's upload size in bytes (what the device sends)."""
    owner, inputs = rows.owner, rows.inputs
    ids = [f"device-{d}-{j}" for j, d in enumerate(owner)]
    req = GenerateBatchRequest(device_ids=ids, model_key=key, dtype=dtype)
    if inputs is None:
        return req, np.zeros(len(owner), np.int64)
    clicks = models.models[method].cfg.kind == "clicks"
    if mode == "embedding":
        x = torch.from_numpy(inputs) if clicks else torch.from_numpy(inputs).float() / 255.0
        emb, mask = models.embed(method, x)  # on device, batched here
        req.embeddings, req.lengths = emb.numpy(), mask.sum(1).numpy()
        return req, req.lengths * emb.shape[2] * 4  # float32 per value
    if clicks:
        req.items = inputs
        return req, 4 * (req.items != 0).sum(1)  # int32 ids of real samples
    req.pixels = inputs.astype(np.float32) / 255.0
    return req, np.full(len(owner), req.pixels[0].nbytes, np.int64)
