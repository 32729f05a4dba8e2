"""What a fleet reports besides its rows: one generator request per attempt with its status
(actors/devices/gateway.py), one shift event per (fleet, shift) when the fleet plays its first
session under it (actors/devices/shifts.py), and the devices still to simulate
(actors/devices/fleet.py). The run's exporter takes them through
`actors.observability.metrics_actor.ExporterClient`, a test through an in-process
`MetricsRecorder`; session rows reach the exporter through the sink's ``on_rows`` hook, once
they are on disk.
"""

from __future__ import annotations

from typing import Protocol


class FleetMetrics(Protocol):
    """What a fleet reports besides its rows (`MetricsRecorder` of actors.observability.metrics
    has these)."""

    def record_shift(self, operator: str, devices: int) -> object: ...

    def set_active_devices(self, fleet_id: str | int, n: int) -> object: ...

    def record_generator(self, status: str, batch_size: int, seconds: float) -> object: ...


class NoMetrics:
    """The `FleetMetrics` of a run without an exporter: every report is dropped."""

    def record_shift(self, operator: str, devices: int) -> None:
        pass

    def set_active_devices(self, fleet_id: str | int, n: int) -> None:
        pass

    def record_generator(self, status: str, batch_size: int, seconds: float) -> None:
        pass
