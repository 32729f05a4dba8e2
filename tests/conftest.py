"""Shared fixtures: tiny random samples in the duet/data.py layout ("baby" configs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from duet.data import ClickSamples, ImageSamples

NUM_ITEMS = 50


def random_clicks(rows: int = 200, sessions: int = 20, seed: int = 0) -> ClickSamples:
    g = torch.Generator().manual_seed(seed)
    label = torch.zeros(rows)
    label[::5] = 1.0
    return ClickSamples(
        history=torch.randint(0, NUM_ITEMS + 1, (rows, 30), generator=g),
        target=torch.randint(1, NUM_ITEMS + 1, (rows,), generator=g),
        label=label,
        session=torch.arange(rows) % sessions,
        user=torch.arange(rows) % (sessions // 2),
        group=torch.arange(rows) // 5,
        position=torch.randint(0, 10, (rows,), generator=g),
        realtime=torch.randint(1, NUM_ITEMS + 1, (sessions, 10), generator=g),
    )


def random_images(
    rows: int = 24, sessions: int = 6, classes: int = 3, seed: int = 0
) -> ImageSamples:
    g = torch.Generator().manual_seed(seed)
    return ImageSamples(
        pixels=torch.rand(rows, 1, 48, 48, generator=g),
        label=torch.randint(0, classes, (rows,), generator=g),
        session=torch.arange(rows) // (rows // sessions),
        user=torch.arange(rows) // (2 * rows // sessions),
        position=torch.arange(rows) % (rows // sessions),
        realtime=torch.rand(sessions, 1, 48, 48, generator=g),
    )


@pytest.fixture
def clicks() -> ClickSamples:
    return random_clicks()


@pytest.fixture
def images() -> ImageSamples:
    return random_images()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (DUET_DATA_DIR, else ../shared/data beside the repo); skip when absent."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("DUET_DATA_DIR", default))
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path}: set DUET_DATA_DIR to run real-data tests")
    return path


@pytest.fixture
def make_clicks():
    return random_clicks


@pytest.fixture
def make_images():
    return random_images
