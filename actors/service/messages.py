"""What devices send the generator and what it answers: one device's request and response,
and the columnar batch of many devices of one model that a fleet actor sends.

Request modes (paper Table 3 compares the two uploads):
    raw        click models: ``items`` (R,) item ids, oldest first, 0 = padding;
               image models: ``pixels`` (C, H, W) the session's first frame.
               The server runs ``model.device_inputs`` on them.
    embedding  ``embeddings`` (R, In): what ``model.device_inputs`` returns on the device
               (item embeddings, or frozen backbone features), real samples only.
Unconditioned models (the HyperNetwork baseline) take no samples; any given are ignored.

Notation used for tensor shapes: D devices in a batch, R real-time samples, In per-sample
input width, C/H/W image channels/height/width, O/I a dynamic layer's output/input width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actors.service.errors import MalformedRequestError

DTYPES = {"float32": np.float32, "float16": np.float16}  # of the returned parameters


@dataclass
class GenerateRequest:
    """One device's request. Give exactly one of ``items``, ``pixels``, ``embeddings``
    (none for unconditioned models). Arrays may be numpy arrays, tensors or nested lists."""

    device_id: str
    model_key: str
    items: Any = None  # (R,) int item ids, raw click upload
    pixels: Any = None  # (C, H, W) float first frame, raw image upload
    embeddings: Any = None  # (R, In) float, embedding upload
    dtype: str = "float32"  # of the returned parameters: "float32" or "float16"
    upload_bytes: int | None = None  # wire size when known (the HTTP ingress sets it)

    @classmethod
    def from_json(cls, body: Any, where: str = "") -> GenerateRequest:
        """Build from a decoded JSON object; unknown keys and wrong JSON types are refused."""
        if not isinstance(body, dict):
            raise MalformedRequestError(
                f"expected a JSON object, got {type(body).__name__}", where or "body"
            )
        known = {"device_id", "model_key", "items", "pixels", "embeddings", "dtype"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise MalformedRequestError(
                f"unknown field(s) {unknown}; accepted: {sorted(known)}", where + unknown[0]
            )
        for key in ("device_id", "model_key"):
            if key not in body:
                raise MalformedRequestError(f"missing required field {key!r}", where + key)
        return cls(**body)


@dataclass
class GenerateResponse:
    """One device's personalized dynamic-layer parameters: ``params[n] = (W (O, I), b (O,))``."""

    device_id: str
    model_key: str
    model_version: str
    dtype: str
    params: list[tuple[np.ndarray, np.ndarray]]
    upload_bytes: int
    download_bytes: int
    batch_size: int  # devices generated in the same forward
    batch_generate_s: float  # wall time of that forward (server side)

    def torch_params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Params as float32 tensors with a leading device axis of 1, for `DeviceModel.score`."""
        return [
            (
                torch.from_numpy(w.astype(np.float32))[None],
                torch.from_numpy(b.astype(np.float32))[None],
            )
            for w, b in self.params
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "model_key": self.model_key,
            "model_version": self.model_version,
            "dtype": self.dtype,
            "params": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.params],
            "upload_bytes": self.upload_bytes,
            "download_bytes": self.download_bytes,
            "batch_size": self.batch_size,
            "batch_generate_s": self.batch_generate_s,
        }


@dataclass
class GenerateBatchRequest:
    """Many devices of one model in columnar form: what a fleet actor holding D devices sends.

    Raw clicks: ``items`` (D, R) int, each row left-padded with 0 (the pipelines' layout).
    Embedding upload: ``embeddings`` (D, R, In) with ``lengths`` (D,): row d's real samples
    are its last ``lengths[d]`` positions (left padding); default all R. Raw images:
    ``pixels`` (D, C, H, W). One array each way instead of D objects keeps Ray's
    serialization and validation vectorized (bench: 3x the throughput of a list of requests
    at 64 devices, 6x at 1,024).
    """

    device_ids: list[str]
    model_key: str
    items: Any = None  # (D, R) int
    embeddings: Any = None  # (D, R, In) float
    lengths: Any = None  # (D,) int, embeddings only
    pixels: Any = None  # (D, C, H, W) float
    dtype: str = "float32"


@dataclass
class GenerateBatchResponse:
    """Every device's parameters in one contiguous buffer ``flat`` (D, P), rows in request order.

    Row d holds device d's layers back to back: W0 (O0*I0, row-major), b0 (O0), W1, b1, ...
    (``shapes`` gives each (O, I)). One buffer instead of two arrays per layer is what makes
    the Serve round trip cheap: Ray ships it as a single out-of-band buffer, and the client
    reads it zero-copy (read-only) from the object store. ``params`` and ``split`` are views.
    """

    device_ids: list[str]
    model_key: str
    model_version: str
    dtype: str
    flat: np.ndarray  # (D, P) in ``dtype``
    shapes: list[tuple[int, int]]  # (O, I) of each dynamic layer
    upload_bytes: np.ndarray  # (D,) int64
    download_bytes: int  # per device
    batch_generate_s: float

    @property
    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stacked views ``[(W (D, O, I), b (D, O)), ...]`` into ``flat`` (no copy)."""
        return layer_views(self.flat, self.shapes)

    def torch_params(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Float32 tensors ``[(W (D, O, I), b (D, O)), ...]`` for `DeviceModel.score`: all D
        devices scored in one call, no per-device split."""
        return layer_views(torch.from_numpy(self.flat.astype(np.float32)), self.shapes)  # a copy

    def split(self) -> list[GenerateResponse]:
        """One `GenerateResponse` per device (views into ``flat``, no copy)."""
        per_layer = [(list(w), list(b)) for w, b in self.params]  # row views, made in C
        rows = zip(*(zip(w, b, strict=True) for w, b in per_layer), strict=True)
        return [
            GenerateResponse(
                device_id=dev,
                model_key=self.model_key,
                model_version=self.model_version,
                dtype=self.dtype,
                params=list(layers),
                upload_bytes=int(up),
                download_bytes=self.download_bytes,
                batch_size=len(self.device_ids),
                batch_generate_s=self.batch_generate_s,
            )
            for dev, layers, up in zip(
                self.device_ids, rows, self.upload_bytes.tolist(), strict=True
            )
        ]


def layer_views(flat: Any, shapes: Sequence[tuple[int, int]]) -> list[tuple[Any, Any]]:
    """The inverse of `flatten_params` without a copy: a (D, P) numpy array or tensor ->
    ``[(W (D, O, I), b (D, O)), ...]`` views of the same type."""
    D, out, offset = flat.shape[0], [], 0
    for o, i in shapes:
        w = flat[:, offset : offset + o * i].reshape(D, o, i)  # a view: rows stay contiguous
        out.append((w, flat[:, offset + o * i : offset + o * i + o]))
        offset += o * i + o
    return out
