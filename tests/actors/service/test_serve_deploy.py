"""`serve deploy` of platform/serve/duet_generator.yaml on a real `ray start --head` cluster.

The cluster is this test's own: its own ports, temp dir and auth token, started with
``ray start --block`` and stopped by signalling that process (``ray stop`` would stop every
Ray on the machine, other sessions' included).
"""

from __future__ import annotations

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
import yaml

from .conftest import CLICK_KEY

httpx = pytest.importorskip("httpx")
pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]

CONFIG = Path(__file__).parents[3] / "platform" / "serve" / "duet_generator.yaml"
BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_for(what: str, check, timeout_s: float) -> str:
    """Poll ``check() -> (done, output)`` until done; fail with the last output."""
    deadline, out = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        done, out = check()
        if done:
            return out
        time.sleep(2)
    pytest.fail(f"{what} not reached in {timeout_s:.0f} s; last output:\n{out}")


@pytest.fixture
def cluster(tmp_path):
    """A head node on 127.0.0.1 with free ports; yields (env for the CLIs, dashboard address)."""
    gcs, dash, agent, client = free_ports(4)
    root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's unix sockets live here
    env = os.environ | {
        "RAY_AUTH_MODE": "token",  # the CLIs send this token; no ~/.ray file is read or written
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5",
    }
    log = (tmp_path / "ray_start.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus",
            "2",
            "--port",
            str(gcs),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dash),
            "--dashboard-agent-listen-port",
            str(agent),
            "--ray-client-server-port",
            str(client),
            "--temp-dir",
            str(root),
            "--disable-usage-stats",
        ],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{dash}"
    try:
        yield env, address
    finally:
        cli(env, "serve", "shutdown", "-y", "--address", address)
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group only
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_serve_deploy_yaml(cluster, checkpoints, tmp_path):
    env, address = cluster
    (http_port,) = free_ports(1)
    config = yaml.safe_load(CONFIG.read_text())
    config["http_options"]["port"] = http_port
    config["applications"][0]["args"]["checkpoints"] = {k: str(v) for k, v in checkpoints.items()}
    path = tmp_path / "duet_generator.yaml"
    path.write_text(yaml.safe_dump(config))

    def deployed():  # retried: the dashboard answers a few seconds after `ray start`
        r = cli(env, "serve", "deploy", str(path), "--address", address)
        return r.returncode == 0, r.stdout + r.stderr

    wait_for("serve deploy accepted", deployed, 90)

    def running():
        r = cli(env, "serve", "status", "--address", address)
        if "DEPLOY_FAILED" in r.stdout:
            pytest.fail(f"deploy failed:\n{r.stdout}")
        return "status: RUNNING" in r.stdout, r.stdout + r.stderr

    wait_for("application RUNNING", running, 120)
    with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
        keys = {m["key"] for m in client.get("/v1/models").json()["models"]}
        assert keys == set(checkpoints)
        r = client.post(
            "/v1/generate",
            json={"device_id": "d", "model_key": CLICK_KEY, "items": [3, 7], "dtype": "float16"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dtype"] == "float16" and [len(p["weight"]) for p in body["params"]] == [32, 32]
