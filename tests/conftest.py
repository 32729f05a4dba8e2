"""Shared fixtures: tiny random samples in the duet/data.py layout ("baby" configs), and a
tiny fleet world (a prepared synthetic dataset, untrained checkpoints, scenario files that use
them) for the fleet, run and end-to-end observability tests."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml

from duet.builders import sequence_umn
from duet.checkpoint import save_checkpoint
from duet.data import ClickSamples, ImageSamples
from duet.model import DeviceModel
from pipelines.prepare import default_options, prepare
from pipelines.synthetic import SyntheticClicksConfig
from pipelines.tensors import load_meta
from simulation.cli import main as cli_main
from simulation.scenario_paths import ROOTS_ENV

NUM_ITEMS = 50


@pytest.fixture(autouse=True)
def registries_as_they_were():
    """A plugin a test loads (examples/plugins/, a test's own module) stays out of the tests
    after it: every registry is restored, and the plugin's module dropped from the import
    cache so that a later test loading it registers it again."""
    from actors.devices.policies import POLICIES
    from duet.backbone import BACKBONES
    from duet.dynamic import HEADS
    from duet.method import METHODS
    from pipelines.datasets import DATASETS
    from pipelines.shifts import SHIFTS

    registries = (METHODS, BACKBONES, HEADS, DATASETS, SHIFTS, POLICIES)
    before = [dict(r.items()) for r in registries]
    yield
    for registry, classes in zip(registries, before, strict=True):
        for name, cls in registry.items():
            if name not in classes:
                sys.modules.pop(cls.__module__, None)
        registry._classes = classes


def cli_exit(argv: list[str]) -> int:
    """`duet-sim`'s exit status for ``argv``: argparse exits 2 from inside the parser, the
    commands return theirs."""
    try:
        return cli_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


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
    """The real datasets (DUET_DATA_DIR, else the Makefile's default beside the repo); skip
    when absent."""
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


# --- a tiny fleet world: scoring and generation need weights, not good ones --------------------
USERS, SESSIONS_PER_USER, TEST_SESSIONS = 12, 5, 2


@pytest.fixture(scope="session", autouse=True)
def scenario_roots(tmp_path_factory):
    """Scenario paths must resolve inside the operator's roots (simulation/scenario.py); the
    tests' data, checkpoints and outputs live under pytest's temp dir, so that is one. Set in
    the environment, so `duet-sim` subprocesses and Ray jobs the tests start inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ROOTS_ENV, str(tmp_path_factory.getbasetemp()))
        yield


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for a module: a run joins a Ray that is already up and leaves it up."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # never a `ray start` cluster
    try:
        yield ray
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "data"
    options = dataclasses.replace(
        default_options("synthetic-clicks"), test_sessions=TEST_SESSIONS, test_negatives=20
    )
    config = SyntheticClicksConfig(
        n_users=USERS, n_items=120, n_clusters=6, sessions_per_user=SESSIONS_PER_USER
    )
    prepare("synthetic-clicks", out, options=options, knobs=config)
    return out


@pytest.fixture(scope="session")
def checkpoints(prepared, tmp_path_factory) -> dict[str, Path]:
    """``{"base": dir, "duet": dir, "hypernet": dir}`` for DIN."""
    meta = load_meta(prepared)
    info = {
        "dataset_meta": {
            k: meta[k] for k in ("dataset", "kind", "num_items", "realtime_size", "history_length")
        }
    }
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    out = {}
    for method in ("base", "duet", "hypernet"):
        cfg = sequence_umn("din", method, meta["num_items"], history_length=meta["history_length"])
        out[method] = save_checkpoint(DeviceModel(cfg), root / f"din-{method}", info=info)
    return out


@pytest.fixture
def scenario_file(prepared, checkpoints, tmp_path):
    """Write a tiny scenario (given data and checkpoints: nothing to train) and return its path;
    keyword arguments replace top-level sections."""

    def write(**sections) -> Path:
        doc = {
            "version": 1,
            "name": "tiny",
            "seed": 0,
            "data": {"dataset": "synthetic-clicks", "prepared": str(prepared)},
            "model": {
                "backbones": ["din"],
                "checkpoints": {f"din/{m}": str(checkpoints[m]) for m in ("base", "duet")},
            },
            "methods": ["base", "duet", "finetune"],
            "fleet": {
                "devices": 30,
                "sessions_per_device": 3,
                "actors": 2,
                "profiles": {
                    "upload": {"raw": 1, "embedding": 1},
                    "availability": {"online": 0.8, "churn": 0.1},
                },
            },
            "shifts": [
                {
                    "operator": "genre_shift",
                    "params": {"fraction": 0.8},
                    "devices": {"fraction": 0.5},
                    "at_session": 1,
                }
            ],
            "output": {"dir": str(tmp_path / "out"), "flush_rows": 30},
        }
        doc.update(sections)
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


# --- object storage: a real S3-compatible server on 127.0.0.1 (moto's server mode) ----------
@dataclasses.dataclass(frozen=True)
class LocalS3:
    """A bucket on the test's S3 server; the AWS variables point every client at it."""

    endpoint: str
    bucket: str

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def upload(self, local: Path, *parts: str) -> str:
        """Copy a local folder under ``parts`` of the bucket; returns its URI."""
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(self.uri(*parts))
        pafs.copy_files(str(local), path, destination_filesystem=fs)
        return self.uri(*parts)


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port for one test module, stopped after it; the
    credentials and endpoint are set in the environment (as for any AWS client), so start it
    before a Ray whose workers must reach it."""
    pytest.importorskip("moto")
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }.items():
            mp.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="duet-test")
        try:
            yield LocalS3(endpoint, "duet-test")
        finally:
            server.stop()
