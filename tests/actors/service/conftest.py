"""Fixtures for the generator tests: tiny untrained checkpoints (no training needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from duet.builders import mobilenet_umn, sequence_umn
from duet.checkpoint import save_checkpoint
from duet.model import DeviceModel

NUM_ITEMS = 50
REALTIME_SIZE = 10
CLICK_KEY, IMAGE_KEY, HYPER_KEY = (
    "syn/gru4rec/duet",
    "ck/mobilenet_v3_small/duet",
    "syn/din/hypernet",
)


def make_checkpoints(root: Path) -> dict[str, Path]:
    """A click model, an image model and a HyperNetwork, keyed as the core keys them."""
    torch.manual_seed(0)
    click_meta = {
        "dataset": "syn",
        "kind": "clicks",
        "num_items": NUM_ITEMS,
        "realtime_size": REALTIME_SIZE,
    }
    image_meta = {
        "dataset": "ck",
        "kind": "images",
        "height": 48,
        "width": 48,
        "channels": 1,
        "realtime_size": 1,
    }
    specs = {
        CLICK_KEY: (sequence_umn("gru4rec", "duet", NUM_ITEMS), click_meta),
        IMAGE_KEY: (mobilenet_umn("small", "duet", 7, in_channels=1, head_hidden=128), image_meta),
        HYPER_KEY: (sequence_umn("din", "hypernet", NUM_ITEMS), click_meta),
    }
    out = {}
    for key, (cfg, meta) in specs.items():
        out[key] = save_checkpoint(
            DeviceModel(cfg), root / key.replace("/", "_"), info={"dataset_meta": meta}
        )
    return out


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    return make_checkpoints(tmp_path_factory.mktemp("generator_ckpts"))
