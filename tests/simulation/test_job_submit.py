"""`ray job submit --working-dir . -- duet-sim run configs/scenarios/quickstart.yaml` against a
local `ray start --head` cluster (shrunk with --set so it trains and runs in about a minute):
the job succeeds and its outputs exist."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHRINK = [
    "data.synthetic.n_users=12",
    "data.synthetic.sessions_per_user=6",
    "data.options.test_negatives=20",
    "model.train.epochs=1",
    "fleet.devices=24",
    "fleet.sessions_per_device=2",
]
STARTUP_S = 120  # a cold `ray start` on a busy 2-core box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(*args: str, env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), *args], env=env, text=True, capture_output=True, **kwargs
    )


@pytest.fixture
def cluster():
    """A head node of its own: free ports, own temp dir, its own auth token (no ~/.ray file is
    read or written), stopped by signalling its ``--block`` process."""
    temp = tempfile.mkdtemp(prefix="rayjob-", dir="/tmp")  # unix socket paths must stay short
    gcs, dashboard, agent, client = (free_port() for _ in range(4))
    env = os.environ | {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_ADDRESS": "",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent}",
            f"--ray-client-server-port={client}",
            f"--temp-dir={temp}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while ray_cli("job", "list", "--address", address, env=env).returncode != 0:
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, f"no job server at {address} after {STARTUP_S} s"
            time.sleep(2)
        yield address, env
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # its own process group only
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_quickstart(cluster, tmp_path):
    address, env = cluster
    out, job = tmp_path / "out", f"duet-test-{secrets.token_hex(4)}"
    sets = [arg for s in SHRINK for arg in ("--set", s)]
    submit = ray_cli(
        "job",
        "submit",
        "--address",
        address,
        "--submission-id",
        job,
        "--working-dir",
        ".",
        "--",
        "duet-sim",
        "run",
        "configs/scenarios/quickstart.yaml",
        "--out",
        str(out),
        "--no-progress",
        *sets,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    status = ray_cli("job", "status", "--address", address, job, env=env)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    assert f"Job '{job}' succeeded" in status.stdout, status.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accounting"]["complete"] and summary["devices"] == 24
    assert any(out.glob("sessions/fleet=*/part-*.parquet"))
    assert (out / "models" / "din-duet" / "model.pt").is_file()
