"""Checkpoints: `model.pt` (a plain state dict) + `config.json` (the ModelConfig).

Loading uses `torch.load(weights_only=True)`, so a checkpoint can never execute code,
and rebuilds the model from JSON, so no pickled Python class crosses a trust boundary.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from duet.method import METHODS
from duet.model import DeviceModel, ModelConfig

WEIGHTS, CONFIG = "model.pt", "config.json"


def save_checkpoint(
    model: DeviceModel, directory: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write weights and config into ``directory``; ``info`` (training options) goes in the JSON."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS)
    payload = {"model": model.cfg.to_dict(), "info": info or {}}
    (directory / CONFIG).write_text(json.dumps(payload, indent=2, sort_keys=True))
    return directory


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not what its config says; names the file.

    torch's own messages (``PytorchStreamReader failed reading zip archive``) and json's
    (``Expecting value: line 1 column 1``) do not say which of many checkpoints was bad.
    """

    def __init__(self, path: Path, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def load_checkpoint(directory: str | Path) -> tuple[DeviceModel, dict[str, Any]]:
    """Rebuild the model from ``config.json`` and load ``model.pt``.

    Returns (model in eval mode, info).

    Raises:
        CheckpointError: a file is missing or cannot be read, naming it.
    """
    directory = Path(directory)
    for name in (WEIGHTS, CONFIG):
        if not (directory / name).is_file():
            raise CheckpointError(directory / name, "not found (a `duet-sim train` run directory?)")
    try:
        payload = json.loads((directory / CONFIG).read_text())
        cfg = ModelConfig.from_dict(payload["model"])
        METHODS[cfg.method].check_model(cfg)  # a method of a plugin: its module is loaded
        model = DeviceModel(cfg)
    except (ValueError, KeyError, TypeError) as exc:  # bad JSON, missing or wrong fields
        raise CheckpointError(directory / CONFIG, f"not a model config ({exc!r})") from exc
    try:
        state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(directory / WEIGHTS, f"cannot load weights ({exc})") from exc
    return model.eval(), payload.get("info", {})
