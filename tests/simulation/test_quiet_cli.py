"""`duet-sim run` prints our lines only: Ray's and Serve's own logs (INFO lines, controller
logs, raylet task warnings, core-worker messages at shutdown) go to OUT/ray.log, whose path
is printed once; `--verbose` would bring them back."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ray

# what Ray's own output looks like: its log format, forwarded process prefixes, C++ names
RAY_LINE = re.compile(
    r"(INFO|WARNING|ERROR) \S+ \d|-- |^\x1b\[\d+m\(|^\((raylet|pid=|Serve|ServeController)|"
    r"core_worker|raylet|Ray instance|ray\.init|Token authentication"
)


def test_a_run_prints_no_ray_log_line_and_keeps_them_in_the_run_dir(scenario_file, tmp_path):
    out = tmp_path / "out"
    path = scenario_file(
        fleet={"devices": 6, "sessions_per_device": 2, "actors": 1},
        output={"dir": str(out), "flush_rows": 30},
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulation.cli",
            "run",
            str(path),
            "--no-progress",
            "--num-cpus",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines() + done.stderr.splitlines()
    leaked = [line for line in lines if RAY_LINE.search(line)]
    assert not leaked, leaked
    assert sum(line.startswith("ray and serve logs: ") for line in lines) == 1
    log = (out / "ray.log").read_text()
    assert "Started a local Ray instance" in log and "serve" in log
    assert any(line.startswith("method ") for line in done.stdout.splitlines())  # our summary
