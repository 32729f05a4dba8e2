"""The fleet tests' world: devices, replays, on-device models and an in-process generator
over the tiny prepared data (tests/conftest.py), shared by the fleet's test modules."""

from __future__ import annotations

import dataclasses

import pytest

from actors.devices.ondevice import DeviceModels
from actors.devices.profiles import NETWORK_CLASSES, sample_profiles
from actors.devices.replay import load_replays, replayable_users
from actors.devices.shifts import ShiftPlan
from actors.service.generator import GeneratorCore
from duet.adaptation import FinetuneConfig
from pipelines.shifts import build_shift, click_context

SESSIONS = 3
# policy variants of duet (tests of test_fleet.py): their names run the duet method and model
METHOD_OF = {"duet-k1": "duet", "duet-once": "duet", "duet-drift": "duet"}


@pytest.fixture(scope="module")
def world(prepared, checkpoints):
    """Devices, replays, on-device models and an in-process generator, shared by the tests."""
    users = replayable_users(prepared).tolist()
    profiles = sample_profiles(
        24,
        users,
        SESSIONS,
        network={k: 1 for k in NETWORK_CLASSES},
        compute={"high": 1, "low": 1},
        upload={"raw": 1, "embedding": 1},
        backbone={"din": 1},
        online=0.8,
        churn=0.1,
        seed=0,
    )
    profiles = [dataclasses.replace(p, shifts=(0,) if p.device_id % 2 else ()) for p in profiles]
    variants = {"duet-k1": "duet", "duet-once": "duet", "duet-drift": "duet", "duet-blend": "duet"}
    ckpts = {**checkpoints, **{n: checkpoints[m] for n, m in variants.items()}}
    models = {"din": DeviceModels(ckpts, FinetuneConfig(), METHOD_OF)}
    core = GeneratorCore.from_checkpoints(
        {f"din/{m}": checkpoints[m] for m in ("duet", "hypernet")}
    )
    shifts = [ShiftPlan("genre_shift", build_shift({"type": "genre_shift", "fraction": 0.8}), 1)]
    return {
        "profiles": profiles,
        "replays": load_replays(prepared, users),
        "models": models,
        "core": core,
        "shifts": shifts,
        "context": click_context(prepared)[0],
        "base_dir": checkpoints["base"],
    }
