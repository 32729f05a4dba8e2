"""A checkpoint as the generator serves it: the loaded model, its content-addressed version,
the sample limit its requests are checked against, and what one device downloads from it.

Every request is left-padded to the model's ``max_samples`` (the dataset's realtime_size),
the layout the PPG was trained on, so a device's parameters do not depend on which other
devices share its batch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actors.service.messages import DTYPES
from actors.storage.uris import materialize
from duet.checkpoint import WEIGHTS, load_checkpoint
from duet.model import DeviceModel

log = logging.getLogger(__name__)

DEFAULT_MAX_SAMPLES = 10  # pipelines' default realtime_size, when a checkpoint does not say


@dataclass
class ServedModel:
    """A loaded checkpoint and the limits its requests are checked against."""

    key: str
    model: DeviceModel
    version: str  # sha256 of model.pt, first 12 hex digits
    meta: dict[str, Any]
    max_samples: int  # S: requests are left-padded to this many samples
    path: str = ""

    @property
    def kind(self) -> str:
        return self.model.cfg.kind

    @property
    def conditioned(self) -> bool:
        return bool(self.model.cfg.ppg and self.model.cfg.ppg.conditioned)

    @property
    def input_dim(self) -> int:
        assert self.model.cfg.ppg is not None
        return self.model.cfg.ppg.input_dim

    @property
    def param_shapes(self) -> list[dict[str, list[int]]]:
        return [{"weight": [o, i], "bias": [o]} for o, i in self.model.cfg.classifier.shapes]

    def describe(self) -> dict[str, Any]:
        cfg = self.model.cfg
        return {
            "key": self.key,
            "version": self.version,
            "kind": self.kind,
            "backbone": cfg.backbone,
            "method": cfg.method,
            "conditioned": self.conditioned,
            "max_samples": self.max_samples,
            "input_dim": self.input_dim if self.conditioned else None,
            "num_items": cfg.sequence.num_items if cfg.sequence else None,
            "image_shape": self.image_shape if self.kind == "images" else None,
            "param_shapes": self.param_shapes,
            "dataset": self.meta.get("dataset"),
        }

    @property
    def image_shape(self) -> tuple[int, int, int]:
        assert self.model.cfg.mobilenet is not None
        c = self.model.cfg.mobilenet.in_channels
        return (c, int(self.meta.get("height", 48)), int(self.meta.get("width", 48)))


def weights_version(directory: str | Path) -> str:
    """Content address of a checkpoint's weights: the same file always has the same version."""
    digest = hashlib.sha256((Path(directory) / WEIGHTS).read_bytes()).hexdigest()
    return digest[:12]


def default_model_key(model: DeviceModel, info: Mapping[str, Any]) -> str:
    """``<dataset>/<backbone>/<method>``, the dataset from the checkpoint's dataset_meta."""
    dataset = info.get("dataset_meta", {}).get("dataset", "unknown")
    return f"{dataset}/{model.cfg.backbone}/{model.cfg.method}"


def load_served_model(
    directory: str | Path, *, key: str | None = None, max_samples: int | None = None
) -> ServedModel:
    """Load one run directory (a path, or a URI copied to this node's cache) for serving
    (eval mode, gradients off).

    Raises:
        ValueError: the checkpoint's method does not generate parameters (base, finetune),
            or ``max_samples`` < 1.
    """
    location, directory = directory, materialize(directory)
    model, info = load_checkpoint(directory)
    if not model.generates:
        raise ValueError(
            f"checkpoint {directory} is method {model.cfg.method!r}, which generates no parameters;"
            " serve a duet, duet-no-swa or hypernet checkpoint"
        )
    model.requires_grad_(False)
    meta = dict(info.get("dataset_meta", {}))
    # what a device sends: its session's real-time samples, or with history conditioning
    # one impression's click history
    size_key = "history_length" if model.condition == "history" else "realtime_size"
    default = meta.get(size_key, 1 if model.cfg.kind == "images" else DEFAULT_MAX_SAMPLES)
    limit = int(max_samples if max_samples is not None else default)
    if limit < 1:
        raise ValueError(f"max_samples must be >= 1, got {limit}")
    served = ServedModel(
        key=key or default_model_key(model, info),
        model=model,
        version=weights_version(directory),
        meta=meta,
        max_samples=limit,
        path=str(location),
    )
    log.info("loaded %s (version %s) from %s", served.key, served.version, directory)
    return served


def param_bytes(served: ServedModel, dtype: str) -> int:
    """Download size of one device's parameters in ``dtype``."""
    return served.model.cfg.classifier.num_params * np.dtype(DTYPES[dtype]).itemsize
