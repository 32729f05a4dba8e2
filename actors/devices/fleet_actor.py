"""The Ray edge of a fleet: an async actor that loads its slice (Ray Data), builds a `Fleet`
and runs it. Restartable: a restarted actor rebuilds from the same `FleetSetup`, skips the
sessions already on disk and carries on; its unflushed rows were never written, so nothing
is written twice. With metrics on, the setup carries an `ExporterClient`: the fleet reports
through it and the runner puts its ``record_part`` among the sink's ``on_rows`` hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa
import ray

from actors.devices.config import FleetConfig
from actors.devices.fleet import Fleet, FleetProgress
from actors.devices.ondevice import DeviceModels
from actors.devices.profiles import DeviceProfile
from actors.devices.replay import load_replays
from actors.devices.shifts import ShiftPlan
from actors.observability.metrics_actor import ExporterClient
from actors.service.generator_client import GeneratorClient, ServeGeneratorClient
from actors.storage.sink import FlushPolicy, PartSink, fleet_dir, flushed_sessions
from actors.storage.uris import materialize
from duet.adaptation import FinetuneConfig
from duet.registry import load_plugins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FleetSetup:
    """What one fleet actor needs, built by the runner (plain, picklable values)."""

    index: int
    config: FleetConfig
    devices: Sequence[DeviceProfile]
    prepared_dir: str  # a path, or a URI (actors/storage/uris.py) on a cluster
    checkpoints: Mapping[str, Mapping[str, str]]  # backbone -> method -> run dir or URI
    sessions_dir: str
    finetune: FinetuneConfig = FinetuneConfig()
    shifts: Sequence[ShiftPlan] = ()
    flush: FlushPolicy = FlushPolicy()
    app_name: str = "duet-generator"
    on_rows: Sequence[Callable[[pa.Table], None]] = field(default_factory=tuple)
    metrics: ExporterClient | None = None  # None: metrics off
    plugins: Sequence[str] = ()  # the run's plugin modules (duet/registry.py)
    plugin_root: str | None = None  # where the driver found them (its working directory)


def build_fleet(setup: FleetSetup, client: GeneratorClient) -> Fleet:
    """Load this fleet's data and models and skip what is already on disk."""
    load_plugins(setup.plugins, setup.plugin_root)  # a worker process has not imported them yet
    devices = list(setup.devices)
    done = flushed_sessions(setup.sessions_dir, [d.device_id for d in devices])
    prepared = materialize(setup.prepared_dir)  # a URI: copied to this node once
    models = {
        b: DeviceModels(ckpts, setup.finetune, setup.config.method_of)
        for b, ckpts in setup.checkpoints.items()
        if any(d.backbone == b for d in devices)
    }
    sink = PartSink(
        fleet_dir(setup.sessions_dir, setup.index),
        setup.flush,
        on_rows=setup.on_rows,
    )
    context = _shift_context(prepared) if setup.shifts else None
    if done:
        log.info("fleet %d: %d sessions already on disk, skipping them", setup.index, len(done))
    return Fleet(
        setup.config,
        devices,
        partial(load_replays, prepared),
        models,
        client,
        sink,
        setup.shifts,
        context,
        done,
        metrics=setup.metrics,
        fleet_id=setup.index,
    )


def _shift_context(prepared: Path):
    from pipelines.shifts import click_context, image_context
    from pipelines.tensors import load_meta

    kind = load_meta(prepared)["kind"]
    build = click_context if kind == "clicks" else image_context
    return build(prepared)[0]


@ray.remote
class FleetActor:
    """One fleet as a Ray actor. Create with ``.options(max_restarts=n, max_task_retries=n)``
    so that a crash restarts it and re-runs `run` on the new instance."""

    def __init__(self, setup: FleetSetup):
        import torch

        torch.set_num_threads(1)  # many fleets and the generator share the cores
        self.index = setup.index
        self.metrics = setup.metrics
        self.fleet = build_fleet(setup, ServeGeneratorClient(app_name=setup.app_name))

    async def run(self, epoch: float | None = None) -> FleetProgress:
        """Play the fleet; ``epoch`` is the run's wall clock of virtual time 0 (`Fleet.run`),
        the same when Ray re-runs this on a restarted actor."""
        try:
            return await self.fleet.run(epoch)
        finally:  # the exporter has this fleet's last rows before the runner closes it
            if self.metrics is not None:
                try:
                    await self.metrics.drain()
                except ray.exceptions.RayError as exc:  # metrics never fail a simulation
                    log.warning("fleet %d: metrics exporter unreachable: %s", self.index, exc)

    async def progress(self) -> FleetProgress:
        return self.fleet.progress()
