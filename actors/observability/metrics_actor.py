"""The run's metrics exporter: one named Ray actor serving a `MetricsServer` that fleets report to.

Why one exporter actor per run (and not Ray's ``ray.util.metrics``):

- Fleets on any node reach it by handle (or by name, `get_exporter`), so a multi-node
  cluster still gives Prometheus one scrape target, pinned to the node of the job's driver,
  whose address the scenario names (``metrics.host``/``metrics.port``).
- ``ray.util.metrics`` goes through each node's metrics agent: one target per node found via
  Ray's service-discovery file, names prefixed ``ray_``, extra per-worker tags
  (``WorkerId``...) that multiply series, and it needs the dashboard agent that
  ``include_dashboard=False`` runs go without. The metric names and labels here are a
  contract with the dashboards, so they are kept exactly.
- The cost is one actor receiving every row: fleets send finished rows in batches, and one
  recorder takes about 25,000 rows/s (measured on this project's 2-core machine under load),
  far more than fleets that each wait on the generator produce.

Fleets call the handle's methods fire-and-forget (``exporter.record_sessions.remote(rows)``,
no ``ray.get``): metrics must never slow or fail a simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.observability.metrics import ROW_COLUMNS, MetricsServer

EXPORTER_NAME = "duet-metrics"

# num_cpus=0: the exporter sleeps between calls and must never wait behind fleets for a CPU
MetricsExporter = ray.remote(num_cpus=0, max_restarts=0)(MetricsServer)


class MetricsSettings(Protocol):
    """The scenario's ``metrics:`` block (only these fields are read)."""

    enabled: bool
    host: str
    port: int


def start_exporter(
    settings: MetricsSettings,
    scenario: str,
    shift_operators: Sequence[str] = (),
    name: str = EXPORTER_NAME,
) -> Any | None:
    """Start the run's exporter on this (the driver's) node, or return None when disabled.

    The actor is owned by the driver, so it ends with the run; call
    ``ray.get(handle.close.remote())`` first so Prometheus reads the last rows.

    Args:
        settings (MetricsSettings): the scenario's metrics block.
        scenario (str): scenario name, the ``scenario`` label of event metrics.
        shift_operators (Sequence[str]): the scenario's shift operator names (counters
            start at 0, see `MetricsRecorder`).
        name (str): actor name in the job's namespace. Default: "duet-metrics".

    Returns:
        ActorHandle | None: the exporter, already listening.

    Raises:
        OSError: the port is taken; raised here, before any fleet starts.
    """
    if not settings.enabled:
        return None
    handle: Any = MetricsExporter.options(
        name=name,
        scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False
        ),
    ).remote(scenario, settings.host, settings.port, list(shift_operators))
    try:
        ray.get(handle.address.remote())  # a bind failure surfaces now, not at the first row
    except ray.exceptions.ActorDiedError as e:
        raise OSError(
            f"metrics exporter could not listen on {settings.host}:{settings.port}: {e}"
        ) from e
    return handle


class ExporterClient:
    """The exporter as a fleet uses it: every call is fire-and-forget (``.remote()``, no
    ``ray.get``) so metrics never slow or fail a simulation. It only holds the actor handle,
    so it pickles into a `FleetSetup` and works from any node.

    Args:
        handle (ActorHandle): the run's exporter, from `start_exporter`.
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def record_part(self, table: pa.Table) -> None:
        """`PartSink` ``on_rows`` hook: one part file's rows, cut to the columns metrics read
        (a third of a row's columns, so a third of what crosses to the exporter)."""
        self.handle.record_sessions.remote(table.select(sorted(ROW_COLUMNS)).to_pylist())

    def record_shift(self, operator: str, devices: int) -> None:
        self.handle.record_shift.remote(operator, devices)

    def set_active_devices(self, fleet_id: str | int, n: int) -> None:
        self.handle.set_active_devices.remote(fleet_id, n)

    def record_generator(self, status: str, batch_size: int, seconds: float) -> None:
        self.handle.record_generator.remote(status, batch_size, seconds)

    async def drain(self) -> None:
        """Return once the exporter has handled every call made through this client.

        The exporter is a plain (not async, not threaded) actor, so it runs one caller's calls
        in the order they were made: awaiting one more call is enough. A fleet drains before
        it reports done, so the runner's ``close()`` (a call from another caller, which Ray
        does not order) never overtakes the fleet's last rows.
        """
        await self.handle.address.remote()


def get_exporter(name: str = EXPORTER_NAME) -> Any | None:
    """The run's exporter by name (for code not handed the handle); None if metrics are off."""
    try:
        return ray.get_actor(name)
    except ValueError:
        return None
