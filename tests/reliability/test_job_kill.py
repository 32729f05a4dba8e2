"""The whole job is killed (SIGKILL to `duet-sim run` and every process it started) mid-run:
what was flushed is readable Parquet, and `duet-sim run ... --resume` completes the run with
exact accounting, leaving the finished part files untouched and redoing no session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from .faults import assert_accounting, paced_scenario, parts, wait_until

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]  # two cold Ray starts: about 100 s here

DUET_SIM = Path(sys.executable).parent / "duet-sim"
KEY = ["device_id", "session_index", "method"]


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`duet-sim` in a session of its own, so one signal reaches it and the Ray it starts."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(DUET_SIM), *args, "--num-cpus", "2", "--no-progress"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_job_resumes_without_redoing_finished_sessions(scenario_file, tmp_path):
    out, log = tmp_path / "out", tmp_path / "job.log"
    path = paced_scenario(scenario_file, out)
    job = start(["run", str(path)], log)
    try:
        wait_until(lambda: len(parts(out)) >= 4 or job.poll() is not None)
        assert job.poll() is None, f"the run ended before it could be killed:\n{log.read_text()}"
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the driver and the local Ray it started
        job.wait()
        wait_until(lambda: not group_alive(job.pid))

    before = parts(out)
    for part in before:  # every flushed part is a complete Parquet file
        assert pq.read_metadata(part).num_rows > 0
    done = pl.read_parquet(out / "sessions").select(KEY)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "running" and done.height < sum(run["expected_sessions"].values())

    resumed = start(["run", str(path), "--resume"], log)
    assert resumed.wait() == 0, log.read_text()

    rows = assert_accounting(out, run["expected_sessions"])
    after = parts(out)
    assert {p: after[p] for p in before} == before  # finished parts untouched
    new = pl.concat([pl.read_parquet(p).select(KEY) for p in set(after) - set(before)])
    assert new.join(done, on=KEY).is_empty()  # no finished session was simulated again
    assert new.height + done.height == rows.height
    finished = json.loads((out / "run.json").read_text())
    assert finished["status"] == "finished" and finished["run_id"] == run["run_id"]
