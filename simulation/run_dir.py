"""A run's output: a local folder or an object-store URI (actors/storage/uris.py), and the
local folder the run works in (the folder itself, or for a URI a staging folder of this
machine). Whether a run may start or resume there, the bookkeeping files beside its session
rows (``scenario.yaml``, ``devices.parquet``, ``run.json``, ``summary.json``), each written
whole, and the rows read back for the summary and the report.

A new run refuses a directory that holds one; ``--resume`` needs one, started with the same
scenario (where the output goes aside), and continues under its run id.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from actors.storage.sink import has_parts, read_sessions
from actors.storage.uris import (
    LocationError,
    check_uri,
    exists,
    filesystem,
    is_uri,
    join,
    publish,
    read_bytes,
    staging_dir,
    write_bytes,
)
from simulation.errors import OutputError
from simulation.fleet_plan import FleetPlan
from simulation.scenario_paths import resolve_path


def scenario_location(value: str) -> str:
    """A scenario location as the actors get it: a URI as is, a local path resolved."""
    return value if is_uri(value) else str(resolve_path(value))


def output_location(value: str | Path) -> str:
    """``--out`` as a location: a URI as is, a folder resolved (``--out`` is the operator's
    choice, not confined to the scenario's roots).

    Raises:
        OutputError: a URI that cannot be an output.
    """
    text = str(value)
    if not is_uri(text):
        return str(Path(text).resolve())
    try:
        return check_uri(text, must_exist=False)
    except LocationError as exc:
        raise OutputError(f"--out: {exc}") from None


class RunDirectory:
    """``output`` for ``scenario`` (its JSON dump): checks it on construction and names the run.

    Attributes:
        output (str): where the results go, a folder or a URI.
        out (Path): the local folder the run works in.
        sessions (str): where the fleets write the session rows.

    Raises:
        OutputError: ``output`` holds a run and ``resume`` is off, or ``resume`` is on and
            ``output`` holds no run or one of a different scenario.
    """

    def __init__(self, output: str, scenario: dict[str, Any], name: str, resume: bool):
        self.output, self.scenario = output, scenario
        self.remote = is_uri(output)
        self.out = staging_dir(output) if self.remote else Path(output)
        self.sessions = join(output, "sessions")
        self.run_json = join(output, "run.json")
        self.run_id = self._resume() if resume else self._new(name)
        if self.remote and not resume:  # a staging folder left by an older run of this URI
            shutil.rmtree(self.out, ignore_errors=True)

    def _new(self, name: str) -> str:
        if exists(self.run_json) or has_parts(self.sessions):
            raise OutputError(
                f"{self.output} already holds a run; pass --resume to continue it "
                "or --out to start a new one"
            )
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return f"{name}-{stamp}-{secrets.token_hex(2)}"

    def _resume(self) -> str:
        if not exists(self.run_json):
            raise OutputError(f"--resume: {self.run_json} not found; nothing to resume")
        saved = yaml.safe_load(read_bytes(join(self.output, "scenario.yaml")))
        if _comparable(saved) != _comparable(self.scenario):
            raise OutputError(
                f"--resume: the scenario differs from the one {self.output} was "
                "started with (see its scenario.yaml); resume needs the same "
                "scenario"
            )
        return json.loads(read_bytes(self.run_json))["run_id"]

    def create(self) -> None:
        """The local folder and ``scenario.yaml`` as resolved (a resumed run rewrites the
        same scenario)."""
        self.out.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.scenario, sort_keys=False)
        write_bytes(join(self.output, "scenario.yaml"), text.encode())

    def write_devices(self, plan: FleetPlan) -> None:
        table = pl.DataFrame(
            [
                {
                    "device_id": p.device_id,
                    "user_id": p.user_id,
                    "fleet": plan.fleet_of(p),
                    "network_class": p.network,
                    "compute_tier": p.compute,
                    "upload_mode": p.upload,
                    "backbone": p.backbone,
                    "sessions": p.num_sessions,
                    "shifts": list(p.shifts),
                }
                for p in plan.devices
            ],
            schema_overrides={"shifts": pl.List(pl.Int64)},
        )
        buffer = io.BytesIO()
        table.write_parquet(buffer)
        write_bytes(join(self.output, "devices.parquet"), buffer.getvalue())

    def write_run_json(self, extra: dict[str, Any], first: dict[str, Any]) -> None:
        """Update ``run.json`` with ``extra``; ``first`` is what a new one starts from."""
        doc = json.loads(read_bytes(self.run_json)) if exists(self.run_json) else dict(first)
        doc.update(extra)
        write_bytes(self.run_json, (json.dumps(doc, indent=2) + "\n").encode())

    def read_rows(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The session rows and the devices, as the summary reads them back."""
        rows = pl.DataFrame(read_sessions(self.sessions))
        devices = pl.read_parquet(io.BytesIO(read_bytes(join(self.output, "devices.parquet"))))
        return rows, devices

    def write_replicas(self, samples: list[tuple[float, int]]) -> None:
        """``replicas.parquet``: the generator's running replicas over the wall clock, sampled
        while the fleets ran (the cost side of a run: replica-seconds)."""
        wall, replicas = zip(*samples, strict=True) if samples else ((), ())
        table = pl.DataFrame(
            {"wall_time": list(wall), "replicas": list(replicas)},
            schema={"wall_time": pl.Float64, "replicas": pl.Int64},
        )
        buffer = io.BytesIO()
        table.write_parquet(buffer)
        write_bytes(join(self.output, "replicas.parquet"), buffer.getvalue())

    def read_replicas(self) -> pl.DataFrame:
        """``replicas.parquet`` (empty for a run without a generator or written before it)."""
        location = join(self.output, "replicas.parquet")
        if not exists(location):
            return pl.DataFrame(schema={"wall_time": pl.Float64, "replicas": pl.Int64})
        return pl.read_parquet(io.BytesIO(read_bytes(location)))

    def write_summary(self, summary: dict[str, Any]) -> None:
        text = json.dumps(summary, indent=2, allow_nan=True) + "\n"
        write_bytes(join(self.output, "summary.json"), text.encode())

    def report_dir(self) -> Path:
        """A local folder holding the run's rows and summary, to draw the report in: the
        output itself, or for a URI the staging folder, with the rows copied there."""
        if self.remote:
            import pyarrow.fs as pafs

            shutil.rmtree(self.out / "sessions", ignore_errors=True)
            fs, path = filesystem(self.sessions)
            pafs.copy_files(path, str(self.out / "sessions"), source_filesystem=fs)
            (self.out / "summary.json").write_bytes(read_bytes(join(self.output, "summary.json")))
        return self.out

    def publish_report(self) -> None:
        """The report drawn in `report_dir`, copied to a URI output (nothing for a folder)."""
        if self.remote:
            publish(self.out / "report.md", join(self.output, "report.md"))
            publish(self.out / "report", join(self.output, "report"))


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A scenario as far as resuming cares: where the output goes may differ."""
    return {k: v for k, v in doc.items() if k != "output"}
