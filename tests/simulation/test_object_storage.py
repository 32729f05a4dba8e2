"""`duet-sim run` with its data, checkpoints and output in object storage (a real
S3-compatible server on 127.0.0.1, moto): fleet actors read from and write to the store
only, the run's files land there whole, and `--resume` completes a run whose parts were
lost; bad URIs are refused before anything starts."""

from __future__ import annotations

import json

import polars as pl
import pyarrow.fs as pafs
import pytest

from actors.storage.sink import read_sessions
from actors.storage.uris import exists, filesystem, read_bytes
from simulation.cli import main

from ..conftest import cli_exit

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

ARGS = ["--num-cpus", "2", "--no-progress"]


def s3_world(s3, scenario_file, prepared, checkpoints, out: str):
    """The tiny scenario with its prepared data and checkpoints uploaded to the bucket."""
    data = s3.upload(prepared, "inputs", "data")
    ckpts = {f"din/{m}": s3.upload(checkpoints[m], "inputs", m) for m in ("base", "duet")}
    return scenario_file(
        data={"dataset": "synthetic-clicks", "prepared": data},
        model={"backbones": ["din"], "checkpoints": ckpts},
        output={"dir": out, "flush_rows": 30},
    )


def test_a_run_reads_and_writes_object_storage_and_resumes(
    s3, local_ray, scenario_file, prepared, checkpoints, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DUET_SIM_CACHE", str(tmp_path / "cache"))
    out = s3.uri("runs", "tiny")
    path = s3_world(s3, scenario_file, prepared, checkpoints, out)
    assert main(["run", str(path), *ARGS]) == 0
    run = json.loads(read_bytes(f"{out}/run.json"))
    summary = json.loads(read_bytes(f"{out}/summary.json"))
    assert run["status"] == "finished" and summary["accounting"]["complete"]
    rows = pl.DataFrame(read_sessions(f"{out}/sessions"))
    assert dict(rows.group_by("method").len().iter_rows()) == run["expected_sessions"]
    for name in ("scenario.yaml", "devices.parquet", "report.md", "report/auc_over_sessions.png"):
        assert exists(f"{out}/{name}"), name
    assert "testing-secret" not in read_bytes(f"{out}/scenario.yaml").decode()
    assert not (tmp_path / "out").exists()  # nothing went to a local output folder

    fs, sessions = filesystem(f"{out}/sessions")
    listing = fs.get_file_info(pafs.FileSelector(sessions, recursive=True))
    parts = sorted(i.path for i in listing if i.base_name.startswith("part-"))
    for part in parts[::2]:  # as if those uploads never happened
        fs.delete_file(part)
    assert read_sessions(f"{out}/sessions").num_rows < rows.height
    assert main(["run", str(path), "--resume", *ARGS]) == 0
    again = pl.DataFrame(read_sessions(f"{out}/sessions"))
    assert again.height == rows.height
    assert again.select("device_id", "session_index", "method").is_unique().all()
    assert json.loads(read_bytes(f"{out}/run.json"))["run_id"] == run["run_id"]
    assert "testing-secret" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("output", {"dir": "gs://bucket/run"}, "output.dir (line"),
        ("output", {"dir": "s3://no-such-bucket/run"}, "bucket 'no-such-bucket' not found"),
        ("output", {"dir": "/etc/duet-out"}, "outside"),
    ],
)
def test_bad_uris_are_refused_before_anything_starts(
    s3, scenario_file, tmp_path, capsys, field, value, message
):
    path = scenario_file(**{field: value})
    assert cli_exit(["validate", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert cli_exit(["run", str(path), *ARGS]) == 2
    assert not (tmp_path / "out").exists()


def test_a_uri_without_credentials_is_refused(s3, scenario_file, tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    path = scenario_file(output={"dir": s3.uri("run")})
    assert cli_exit(["validate", str(path)]) == 2
    assert "no AWS credentials" in capsys.readouterr().err


def test_an_operators_bad_out_uri_is_refused(s3, scenario_file, capsys):
    assert cli_exit(["run", str(scenario_file()), "--out", "s3://no-such-bucket/x", *ARGS]) == 2
    assert "--out: 's3://no-such-bucket/x': bucket 'no-such-bucket' not found" in (
        capsys.readouterr().err
    )
