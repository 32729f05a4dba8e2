"""A fleet: many simulated devices in one process, each an asyncio task replaying its sessions.

Per session a device (1) applies the shifts active for it (actors/devices/shifts.py), (2) lets
each generated method's request policy decide whether to ask (actors/devices/policy_cache.py),
uploads its real-time samples and receives generated parameters (actors/devices/gateway.py,
actors/devices/uploads.py), (3) scores the session on device with every method, paired on the
same data, and (4) hands one row per method to the sink (actors/devices/session_row.py, with
the session's latency on the virtual clock of actors/devices/latency.py). Devices' generator
requests are micro-batched into columnar `GenerateBatchRequest`s (the generator's fast path)
and their scoring into one batched forward per backbone.

Metrics go to an optional `FleetMetrics` (actors/devices/fleet_metrics.py); the fleet itself
reports the devices still to simulate.

No Ray here: the fleet takes a `GeneratorClient` and loaded replays;
actors/devices/fleet_actor.py is the Ray wrapper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from actors.devices.batching import MicroBatcher
from actors.devices.config import FleetConfig
from actors.devices.fleet_metrics import FleetMetrics, NoMetrics
from actors.devices.gateway import GeneratorGateway
from actors.devices.latency import session_latency
from actors.devices.ondevice import Costs, DeviceModels, SessionScore
from actors.devices.policies import CacheState
from actors.devices.policy_cache import decide, settle
from actors.devices.profiles import DeviceProfile
from actors.devices.replay import Replay, ReplaySource
from actors.devices.session_row import Start, session_row
from actors.devices.shifts import ShiftPlan, ShiftSchedule
from actors.service.generator_client import GeneratorClient
from actors.storage.rows import SessionRow
from actors.storage.sink import PartSink
from pipelines.shifts import ShiftContext


@dataclass
class FleetProgress:
    """What a fleet reports to the runner: sessions simulated and skipped (already on disk),
    fallbacks, rows on disk, and per method the sum and count of session AUCs (for the
    running mean on the progress bar)."""

    sessions: int = 0
    skipped: int = 0
    fallback: int = 0
    expected: int = 0
    rows_written: int = 0
    auc_sum: dict[str, float] = field(default_factory=dict)
    auc_n: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.sessions + self.skipped


class Fleet:
    """Runs its devices' sessions and streams rows to a sink.

    Args:
        config (FleetConfig): run-wide settings.
        devices (Sequence[DeviceProfile]): the devices this fleet hosts.
        replays (ReplaySource): reads recorded sessions by user, a block of devices at a
            time; device session k replays its user's session ``k % len``.
        models (Mapping[str, DeviceModels]): on-device models by backbone.
        client (GeneratorClient): the generator.
        sink (PartSink): where finished sessions go.
        shifts (Sequence[ShiftPlan]): indexed by `DeviceProfile.shifts`.
        shift_context (ShiftContext | None): runtime data the shift operators need.
        done (set[tuple[int, int]]): (device, session) keys already on disk: skipped.
        metrics (FleetMetrics | None): where generator requests, shift events and active
            devices go. Default: nowhere.
        fleet_id (int): this fleet's label in ``set_active_devices``. Default: 0.
    """

    def __init__(
        self,
        config: FleetConfig,
        devices: Sequence[DeviceProfile],
        replays: ReplaySource,
        models: Mapping[str, DeviceModels],
        client: GeneratorClient,
        sink: PartSink,
        shifts: Sequence[ShiftPlan] = (),
        shift_context: ShiftContext | None = None,
        done: set[tuple[int, int]] | None = None,
        metrics: FleetMetrics | None = None,
        fleet_id: int = 0,
    ):
        self.config, self.devices, self.replays = config, list(devices), replays
        self.models, self.sink = models, sink
        self.done = done or set()
        self.metrics, self.fleet_id = metrics or NoMetrics(), fleet_id
        self.gateway = GeneratorGateway(client, models, config, self.metrics)
        self.shifts = ShiftSchedule(shifts, shift_context, self.devices, config.seed, self.metrics)
        self._active = 0
        self.costs = self._calibrate()
        self._scorers = {  # one scoring thread at a time: the fleet has one core's worth
            b: MicroBatcher(
                partial(self._score, b),
                config.score_batch_sessions,
                config.batching.batch_wait_s,
                max_concurrent=1,
            )
            for b in models
        }
        self.stats = FleetProgress()

    def _calibrate(self) -> dict[str, Costs]:
        costs = {}
        for backbone, models in self.models.items():
            device = next((d for d in self.devices if d.backbone == backbone), None)
            if device is not None:
                replays = self._load([device])[device.user_id]
                costs[backbone] = models.calibrate(replays[0], self.config.methods)
        return costs

    def _load(self, devices: Sequence[DeviceProfile]) -> Mapping[int, Sequence[Replay]]:
        """The recorded sessions of ``devices``' users."""
        users = sorted({d.user_id for d in devices})
        replays = self.replays(users)
        missing = [u for u in users if not replays.get(u)]
        if missing:
            raise ValueError(f"no sessions to replay for user(s) {missing[:10]}")
        return replays

    def expected_sessions(self) -> int:
        return sum(d.num_sessions for d in self.devices)

    async def run(self, epoch: float | None = None) -> FleetProgress:
        """Replay every device's remaining sessions; returns the final `progress`.

        Args:
            epoch (float | None): the wall clock (epoch seconds) of virtual time 0 for a
                paced fleet (``config.pacing > 0``), shared by every fleet of a run and
                kept by a restarted one. Default: now.
        """
        self.epoch = time.time() if epoch is None else epoch
        slots = asyncio.Semaphore(self.config.play.max_in_flight)
        self._active = len(self.devices)
        self.metrics.set_active_devices(self.fleet_id, self._active)
        flusher = asyncio.create_task(self._flush_periodically())
        paced = self.config.pacing > 0  # every device waits its turn: all of them alive
        alive = len(self.devices) if paced else self.config.play.devices_alive
        room = asyncio.Semaphore(max(alive, 1))
        try:
            async with asyncio.TaskGroup() as group:
                async for devices, replays in self._blocks(max(1, alive // 2)):
                    for device in devices:
                        await room.acquire()
                        replayed = replays[device.user_id]
                        group.create_task(self._device(device, replayed, slots, room))
        finally:
            flusher.cancel()
            self.sink.flush()
        return self.progress()

    async def _blocks(
        self, size: int
    ) -> AsyncIterator[tuple[Sequence[DeviceProfile], Mapping[int, Sequence[Replay]]]]:
        """Blocks of ``size`` devices with their replays, the next read while this one plays."""
        blocks = [self.devices[i : i + size] for i in range(0, len(self.devices), size)]
        read = partial(asyncio.to_thread, self._load)
        upcoming = asyncio.create_task(read(blocks[0])) if blocks else None
        for i, devices in enumerate(blocks):
            loading, upcoming = upcoming, None
            if i + 1 < len(blocks):
                upcoming = asyncio.create_task(read(blocks[i + 1]))
            assert loading is not None
            yield devices, await loading

    async def _flush_periodically(self) -> None:
        while True:  # slow (paced) fleets still put rows on disk every flush_interval_s
            await asyncio.sleep(self.sink.flush_interval_s)
            if self.sink.due():
                self.sink.flush()

    async def _device(
        self,
        device: DeviceProfile,
        replays: Sequence[Replay],
        slots: asyncio.Semaphore,
        room: asyncio.Semaphore,
    ) -> None:
        try:
            await self._play(device, replays, slots)
        finally:  # finished, failed or cancelled: the device is no longer simulated
            room.release()
            self._active -= 1
            self.metrics.set_active_devices(self.fleet_id, self._active)

    async def _play(
        self, device: DeviceProfile, replays: Sequence[Replay], slots: asyncio.Semaphore
    ) -> None:
        # what the device keeps between sessions, per generated method (lost on a restart:
        # a resumed device starts with nothing cached)
        cache = {m: CacheState() for m in self.config.generated}
        for k in range(self.config.sessions_per_device):
            if not device.active[k]:
                continue
            if (device.device_id, k) in self.done:
                self.stats.skipped += 1
                continue
            due = self._due(device.start_s[k])
            if not math.isnan(due):  # paced: wait for the wall clock; a late one goes at once
                await asyncio.sleep(max(0.0, due - time.time()))
            async with slots:
                start = Start(due, time.time())
                rows = await self._session(device, k, replays[k % len(replays)], cache, start)
            self.sink.add(rows)  # the one place finished rows leave the fleet
            self._count(rows)

    def _due(self, start_s: float) -> float:
        """The wall clock a session starting at virtual ``start_s`` is due at (NaN: unpaced)."""
        if self.config.pacing <= 0:
            return math.nan
        return self.epoch + start_s * self.config.pacing

    async def _session(
        self,
        device: DeviceProfile,
        k: int,
        replay: Replay,
        cache: Mapping[str, CacheState],
        start: Start,
    ) -> list[SessionRow]:
        session, shift = self.shifts.apply(device, k, replay)
        models = self.models[device.backbone]
        asks = {
            m: decide(self.config, models, device, m, session, cache[m])
            for m in self.config.generated
        }
        wanted = [m for m, ask in asks.items() if ask.decision.request]
        outcomes = await asyncio.gather(
            *(self.gateway.generate(device, m, replay, session) for m in wanted)
        )
        gen = settle(asks, dict(zip(wanted, outcomes, strict=True)), cache)
        scores = await self._scorers[device.backbone].submit((replay, session, gen))
        cost, rows = self.costs[device.backbone], []
        for m in self.config.methods:  # one row per method, all scored on the same session
            score, got, ask = scores[m], gen.get(m), asks.get(m)
            latency = session_latency(self.config, cost, device, m, score.num_samples, got, ask)
            rows.append(
                session_row(
                    self.config, device, k, replay, shift, m, score, got, ask, latency, start
                )
            )
        return rows

    async def _score(self, backbone: str, items: list) -> list[dict[str, SessionScore]]:
        replays, sessions, received = zip(*items, strict=True)
        by_method = {m: [r.get(m) for r in received] for m in self.config.generated}
        return await asyncio.to_thread(
            self.models[backbone].score, replays, sessions, self.config.methods, by_method
        )

    def _count(self, rows: list[SessionRow]) -> None:
        p = self.stats
        p.sessions += 1
        for row in rows:
            p.fallback += row.fallback
            if not np.isnan(row.auc):
                p.auc_sum[row.method] = p.auc_sum.get(row.method, 0.0) + row.auc
                p.auc_n[row.method] = p.auc_n.get(row.method, 0) + 1

    def progress(self) -> FleetProgress:
        """Sessions done (this run and skipped as already on disk), fallbacks, running AUC."""
        return dataclasses.replace(
            self.stats,
            expected=self.expected_sessions(),
            rows_written=self.sink.rows_written,
            auc_sum=dict(self.stats.auc_sum),
            auc_n=dict(self.stats.auc_n),
        )
