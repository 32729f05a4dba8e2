"""A run's output directory: whether a run may start or resume there, and the bookkeeping
files beside its session rows (``scenario.yaml``, ``devices.parquet``, ``run.json``). A local
folder or an object-store URI (actors/storage/uris.py); every file is written whole.

A new run refuses a directory that holds one; ``--resume`` needs one, started with the same
scenario (where the output goes aside), and continues under its run id.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from typing import Any

import polars as pl
import yaml

from actors.storage.sink import has_parts
from actors.storage.uris import exists, join, read_bytes, write_bytes
from simulation.fleet_plan import FleetPlan


class RunDirError(RuntimeError):
    """The output directory does not fit the request (a run there already, or none)."""


class RunDirectory:
    """``out`` for ``scenario`` (its JSON dump): checks it on construction and names the run.

    Raises:
        RunDirError: ``out`` holds a run and ``resume`` is off, or ``resume`` is on and
            ``out`` holds no run or one of a different scenario.
    """

    def __init__(self, out: str, scenario: dict[str, Any], name: str, resume: bool):
        self.out, self.scenario = out, scenario
        self.run_json = join(out, "run.json")
        self.run_id = self._resume() if resume else self._new(name)

    def _new(self, name: str) -> str:
        if exists(self.run_json) or has_parts(join(self.out, "sessions")):
            raise RunDirError(
                f"{self.out} already holds a run; pass --resume to continue it "
                "or --out to start a new one"
            )
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return f"{name}-{stamp}-{secrets.token_hex(2)}"

    def _resume(self) -> str:
        if not exists(self.run_json):
            raise RunDirError(f"--resume: {self.run_json} not found; nothing to resume")
        saved = yaml.safe_load(read_bytes(join(self.out, "scenario.yaml")))
        if _comparable(saved) != _comparable(self.scenario):
            raise RunDirError(
                f"--resume: the scenario differs from the one {self.out} was "
                "started with (see its scenario.yaml); resume needs the same "
                "scenario"
            )
        return json.loads(read_bytes(self.run_json))["run_id"]

    def write_scenario(self) -> None:
        text = yaml.safe_dump(self.scenario, sort_keys=False)
        write_bytes(join(self.out, "scenario.yaml"), text.encode())

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
        write_bytes(join(self.out, "devices.parquet"), buffer.getvalue())

    def write_run_json(self, extra: dict[str, Any], first: dict[str, Any]) -> None:
        """Update ``run.json`` with ``extra``; ``first`` is what a new one starts from."""
        doc = json.loads(read_bytes(self.run_json)) if exists(self.run_json) else dict(first)
        doc.update(extra)
        write_bytes(self.run_json, (json.dumps(doc, indent=2) + "\n").encode())


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A scenario as far as resuming cares: where the output goes may differ."""
    return {k: v for k, v in doc.items() if k != "output"}
