"""A fleet: many simulated devices in one process, each an asyncio task replaying its sessions.

Per session a device (1) applies the shifts active for it, (2) uploads its real-time samples
and receives generated parameters for every generated method, (3) scores the session on
device with every method, paired on the same data, and (4) hands one row per method to the
sink. Devices' generator requests are micro-batched into columnar `GenerateBatchRequest`s
(the generator's fast path) and their scoring into one batched forward per backbone.

A virtual clock per device says when things happen: a session starts at the device's
cumulative think time (`DeviceProfile.start_s`); its latency components are
transfer = bytes / bandwidth + RTT, generate = the measured wall time of the generator call
(including retries), inference and fine-tuning = the time measured for one session alone on
this CPU x the compute tier (actors/devices/ondevice.py). A row's ``sim_time_s`` is the
session's end.

If the generator cannot be reached (errors, timeouts or backpressure past ``retries`` or
``deadline_s``, with exponential backoff in between, or the server's Retry-After when longer)
the device scores with the method's global classifier and its row says ``fallback``. A
request the generator refuses as invalid is not retried.

Metrics go to an optional `FleetMetrics` (the run's exporter through
`actors.observability.metrics_actor.ExporterClient`, or an in-process `MetricsRecorder`): one
generator request per attempt with its status, one shift event per (fleet, shift) when the fleet
plays its first session under it, and the devices still to simulate. Session rows reach
the exporter through the sink's ``on_rows`` hook, once they are on disk.

No Ray here: the fleet takes a `GeneratorClient` and loaded replays (STYLE item 9);
actors/devices/fleet_actor.py is the Ray wrapper.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import torch

from actors.devices.batching import MicroBatcher
from actors.devices.methods import method_class
from actors.devices.ondevice import Costs, DeviceModels, NumpyParams, SessionScore
from actors.devices.policies import Always, CacheState, Decision, Gate, RequestPolicy, drift_score
from actors.devices.profiles import DeviceProfile, NetworkClass
from actors.devices.replay import Replay, ReplaySource, click_rows
from actors.service.errors import GeneratorError
from actors.service.generator_client import GeneratorClient
from actors.service.messages import GenerateBatchRequest, GenerateBatchResponse
from actors.storage.rows import SessionRow
from actors.storage.sink import PartSink
from pipelines.shifts import ClickSession, ShiftContext, session_rng

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a device tries the generator before falling back to its global classifier."""

    timeout_s: float = 10.0  # one attempt
    retries: int = 3  # attempts after the first
    backoff_s: float = 0.1  # wait before retry i is backoff_s * 2**i, at most max_backoff_s
    max_backoff_s: float = 5.0
    deadline_s: float = 30.0  # no attempt starts past this, counted from the first

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Exponential backoff, or the server's ``Retry-After`` when longer; capped either way."""
        backoff = self.backoff_s * 2 ** (attempt - 1)
        return min(max(backoff, retry_after_s or 0.0), self.max_backoff_s)


@dataclass(frozen=True)
class ShiftPlan:
    """A built shift operator and the session window it covers on its devices."""

    name: str
    op: Any  # a pipelines.shifts operator
    at_session: int = 0
    until_session: int | None = None

    def covers(self, k: int) -> bool:
        return k >= self.at_session and (self.until_session is None or k < self.until_session)


@dataclass(frozen=True)
class FleetConfig:
    """Everything about a run that a fleet needs besides its devices and data."""

    run_id: str
    scenario: str
    dataset: str
    methods: tuple[str, ...]  # the run's method names, as rows carry them
    sessions_per_device: int
    model_keys: Mapping[str, str]  # "<backbone>/<method>" -> generator model key
    network_classes: Mapping[str, NetworkClass]
    compute_tiers: Mapping[str, float]
    seed: int = 0
    max_in_flight: int = 512
    # devices simulated at once (their tasks and replays held); the rest wait their turn and
    # their replays are read a block at a time, so a fleet of 50,000 devices holds a few
    # thousand. A paced fleet keeps every device alive: they sleep through think times.
    devices_alive: int = 4096
    pace: float = 0.0  # wall seconds per virtual second of think time
    dtype: str = "float32"
    batch_wait_s: float = 0.01
    max_batch_devices: int = 1024
    score_batch_sessions: int = 64
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # name -> registered method (actors/devices/methods.py); a name missing here is its own
    method_of: Mapping[str, str] = field(default_factory=dict)
    # name -> request policy of a generated method; a generated name missing here: always
    policies: Mapping[str, RequestPolicy] = field(default_factory=dict)
    # "<backbone>/<name>" -> the learned policy's trained gate (simulation/request_gate.py)
    gates: Mapping[str, Gate] = field(default_factory=dict)

    def policy(self, name: str) -> RequestPolicy | None:
        """The request policy of ``name``; None for a method the cloud does not generate."""
        if not method_class(self.method_of.get(name, name)).generated:
            return None
        return self.policies.get(name) or Always()

    @property
    def generated(self) -> tuple[str, ...]:
        """The names whose parameters the cloud generates."""
        return tuple(m for m in self.methods if self.policy(m) is not None)


@dataclass(frozen=True)
class Generated:
    """One device's generator outcome for one session; ``params`` None means it fell back.

    A session-conditioned method makes one request and gets one parameter set (W (O, I)
    per layer). A history-conditioned one requests per scored impression: W is (T, O, I),
    one set per position of the session, and ``requests`` counts them; a position whose
    history is empty is not sent and scores with the global classifier (``sent`` False).
    """

    params: NumpyParams | None
    bytes_up: int
    bytes_down: int
    generate_s: float
    server_s: float
    attempts: int
    version: str = ""
    requests: int = 1
    sent: np.ndarray | None = None  # per impression: which positions got parameters


@dataclass(frozen=True)
class Ask:
    """A request policy's decision for one (device, session, method), with what it read:
    the drift score (NaN when the policy does not use it) and the cached set's age in
    sessions (-1: nothing cached), and the session's fingerprint (stored on success)."""

    policy: str
    decision: Decision
    drift: float
    age: int
    fingerprint: np.ndarray | None


def realtime_input(session) -> torch.Tensor:
    """A session's real-time samples as the device's model reads them: (1, R) item ids, or
    (1, C, H, W) of its first frame in [0, 1]."""
    if isinstance(session, ClickSession):
        return torch.from_numpy(session.realtime[None].astype(np.int64))
    return torch.from_numpy(session.pixels[:1]).float() / 255.0


# ---- the generator side ------------------------------------------------------------------------
class GeneratorGateway:
    """Per (model key, upload mode) micro-batchers in front of a `GeneratorClient`; every
    attempt is reported to ``metrics`` with its status: "ok", "timeout", "error" (unreachable,
    replica died, overloaded: all retried) or "refused" (an invalid request, not retried)."""

    def __init__(
        self,
        client: GeneratorClient,
        models: Mapping[str, DeviceModels],
        config: FleetConfig,
        metrics: FleetMetrics | None = None,
    ):
        self.client, self.models, self.config = client, models, config
        self.metrics = metrics or NoMetrics()
        self._batchers: dict[tuple[str, str, str], MicroBatcher] = {}

    async def generate(
        self, device: DeviceProfile, method: str, replay: Replay, session
    ) -> Generated:
        slot = (device.backbone, method, device.upload)  # one columnar request per slot
        if slot not in self._batchers:
            self._batchers[slot] = MicroBatcher(
                partial(self._call, slot), self.config.max_batch_devices, self.config.batch_wait_s
            )
        return await self._batchers[slot].submit((device.device_id, replay, session))

    async def _call(
        self, slot: tuple[str, str, str], items: list[tuple[int, Replay, Any]]
    ) -> list[Generated]:
        """One columnar request for a micro-batch of devices: a row per device, or, for a
        history-conditioned model, a row per scored impression of each device's session."""
        backbone, method, mode = slot
        key = self.config.model_keys[f"{backbone}/{method}"]
        model = self.models[backbone].models[method]
        conditioned = bool(model.cfg.ppg and model.cfg.ppg.conditioned)
        per_device = [
            _condition_rows(model, r, s) if conditioned else (None, np.ones(1, bool))
            for _, r, s in items
        ]
        owner = np.concatenate(
            [np.full(int(sent.sum()), i) for i, (_, sent) in enumerate(per_device)]
        )
        out = [Generated(None, 0, 0, 0.0, 0.0, 0, requests=0)] * len(items)
        if not len(owner):
            return out  # nothing to condition on: every device falls back at once
        inputs = None if not conditioned else np.concatenate([x[sent] for x, sent in per_device])
        request, up = await asyncio.to_thread(
            self._request, key, mode, backbone, method, inputs, owner, model.cfg.kind == "clicks"
        )
        response, attempts, elapsed_s = await self._with_retries(request)
        history = model.condition == "history"
        for i, (_, sent) in enumerate(per_device):
            mine = np.flatnonzero(owner == i)  # this device's rows of the request
            n, bytes_up = len(mine), int(up[mine].sum())
            if response is None or not n:
                out[i] = Generated(None, bytes_up, 0, elapsed_s, 0.0, attempts, requests=n)
                continue
            pick = mine if history else mine[0]  # (T', O, I) per impression, else (O, I)
            out[i] = Generated(
                [(w[pick], b[pick]) for w, b in response.params],
                bytes_up,
                n * response.download_bytes,
                elapsed_s,
                response.batch_generate_s * n / len(owner),
                attempts,
                response.model_version,
                requests=n,
                sent=sent if history else None,
            )
        return out

    def _request(
        self,
        key: str,
        mode: str,
        backbone: str,
        method: str,
        inputs: np.ndarray | None,
        owner: np.ndarray,
        clicks: bool,
    ) -> tuple[GenerateBatchRequest, np.ndarray]:
        """The columnar request (one row per entry of ``owner``, the device it is for) and
        each row's upload size in bytes (what the device sends)."""
        ids = [f"device-{d}-{j}" for j, d in enumerate(owner)]
        req = GenerateBatchRequest(device_ids=ids, model_key=key, dtype=self.config.dtype)
        if inputs is None:
            return req, np.zeros(len(owner), np.int64)
        if mode == "embedding":
            x = torch.from_numpy(inputs) if clicks else torch.from_numpy(inputs).float() / 255.0
            emb, mask = self.models[backbone].embed(method, x)  # on device, batched here
            req.embeddings, req.lengths = emb.numpy(), mask.sum(1).numpy()
            return req, req.lengths * emb.shape[2] * 4  # float32 per value
        if clicks:
            req.items = inputs
            return req, 4 * (req.items != 0).sum(1)  # int32 ids of real samples
        req.pixels = inputs.astype(np.float32) / 255.0
        return req, np.full(len(owner), req.pixels[0].nbytes, np.int64)

    async def _with_retries(
        self, request: GenerateBatchRequest
    ) -> tuple[GenerateBatchResponse | None, int, float]:
        """(response or None, attempts, wall seconds) under the retry policy."""
        policy, start, attempt = self.config.retry, time.perf_counter(), 0
        report = partial(self.metrics.record_generator, batch_size=len(request.device_ids))
        while True:
            attempt += 1
            began = time.perf_counter()
            remaining = policy.deadline_s - (began - start)
            try:
                response = await asyncio.wait_for(
                    self.client.agenerate_batch(request),
                    min(policy.timeout_s, max(remaining, 1e-3)),
                )
                report("ok", seconds=time.perf_counter() - began)
                return response, attempt, time.perf_counter() - start
            except GeneratorError as exc:  # the request itself is wrong: retrying cannot help
                report("refused", seconds=time.perf_counter() - began)
                log.warning(
                    "generator refused %s (%s): %s", request.model_key, exc.field, exc.message
                )
                return None, attempt, time.perf_counter() - start
            # unreachable, timed out, replica died, overloaded: retried
            except Exception as exc:  # noqa: BLE001
                status = "timeout" if isinstance(exc, TimeoutError) else "error"
                report(status, seconds=time.perf_counter() - began)
                # Serve's BackPressureError (queue full) says when to come back
                delay = policy.delay_s(attempt, getattr(exc, "retry_after_s", None))
                if (
                    attempt > policy.retries
                    or time.perf_counter() - start + delay >= policy.deadline_s
                ):
                    log.warning(
                        "generator %s unavailable after %d attempt(s) (%s: %s); falling back",
                        request.model_key,
                        attempt,
                        type(exc).__name__,
                        exc,
                    )
                    return None, attempt, time.perf_counter() - start
                await asyncio.sleep(delay)


def _condition_rows(model, replay: Replay, session) -> tuple[np.ndarray, np.ndarray]:
    """What a device sends a conditioned generator for one session, and which rows carry
    samples: ``(inputs (K, ...), sent (K,) bool)``. Session conditioning: one row, the
    session's real-time clicks or its first frame. History conditioning: one row per
    scored impression, its own click history (the authors' code)."""
    if model.condition == "history":
        history, _, _ = click_rows(replay, session)  # (T, L)
        return history, history.any(axis=1)
    if isinstance(session, ClickSession):
        return session.realtime[None], np.array([session.realtime.any()])
    return session.pixels[:1], np.ones(1, dtype=bool)


# ---- the fleet ---------------------------------------------------------------------------------
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
        self.models, self.sink, self.shifts = models, sink, list(shifts)
        self.shift_context = shift_context or ShiftContext()
        self.done = done or set()
        self.metrics, self.fleet_id = metrics or NoMetrics(), fleet_id
        self.gateway = GeneratorGateway(client, models, config, self.metrics)
        self._shift_devices = Counter(i for d in self.devices for i in d.shifts)
        self._shifts_started: set[int] = set()
        self._active = 0
        self.costs = self._calibrate()
        self._scorers = {  # one scoring thread at a time: the fleet has one core's worth
            b: MicroBatcher(
                partial(self._score, b),
                config.score_batch_sessions,
                config.batch_wait_s,
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

    async def run(self) -> FleetProgress:
        """Replay every device's remaining sessions; returns the final `progress`."""
        slots = asyncio.Semaphore(self.config.max_in_flight)
        self._active = len(self.devices)
        self.metrics.set_active_devices(self.fleet_id, self._active)
        flusher = asyncio.create_task(self._flush_periodically())
        alive = self.config.devices_alive if self.config.pace == 0 else len(self.devices)
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
        previous_s = 0.0
        for k in range(self.config.sessions_per_device):
            if not device.active[k]:
                continue
            if (device.device_id, k) in self.done:
                self.stats.skipped += 1
                continue
            if self.config.pace > 0:  # demos: wait the think time, scaled
                await asyncio.sleep(self.config.pace * (device.start_s[k] - previous_s))
            previous_s = device.start_s[k]
            async with slots:
                rows = await self._session(device, k, replays[k % len(replays)], cache)
            self.sink.add(rows)  # the one place finished rows leave the fleet
            self._count(rows)

    async def _session(
        self, device: DeviceProfile, k: int, replay: Replay, cache: Mapping[str, CacheState]
    ) -> list[SessionRow]:
        session, shift = self._shifted(device, k, replay)
        asks = {m: self._decide(device, m, session, cache[m], k) for m in self.config.generated}
        wanted = [m for m, ask in asks.items() if ask.decision.request]
        outcomes = await asyncio.gather(
            *(self.gateway.generate(device, m, replay, session) for m in wanted)
        )
        gen: dict[str, Generated | None] = dict(zip(wanted, outcomes, strict=True))
        for m, ask in asks.items():
            state = cache[m]
            if m in gen:
                state.requests += 1
                got = gen[m]
                if got is not None and got.params is not None and got.sent is None:
                    state.store(got.params, ask.fingerprint, got.version)
            elif state.params is not None:  # kept: scored with what the device holds
                gen[m] = Generated(state.params, 0, 0, 0.0, 0.0, 0, state.version, requests=0)
            else:  # nothing cached and no request: the global classifier
                gen[m] = None
            state.sessions += 1
        scores = await self._scorers[device.backbone].submit((replay, session, gen))
        return [
            self._row(device, k, replay, shift, m, scores[m], gen.get(m), asks.get(m))
            for m in self.config.methods
        ]

    def _decide(
        self, device: DeviceProfile, method: str, session, state: CacheState, k: int
    ) -> Ask:
        """The policy's decision for this session, with the drift score it was taken on."""
        policy = self.config.policy(method)
        assert policy is not None
        fingerprint, drift = None, math.nan
        if policy.needs_drift:
            models = self.models[device.backbone]
            fingerprint = models.fingerprint(method, realtime_input(session))
            drift = drift_score(fingerprint, state.fingerprint)
        gate = self.config.gates.get(f"{device.backbone}/{method}")
        return Ask(policy.label, policy.decide(state, drift, gate), drift, state.age(), fingerprint)

    def _shifted(self, device: DeviceProfile, k: int, replay: Replay):
        covering = [i for i in device.shifts if self.shifts[i].covers(k)]
        for i in set(covering) - self._shifts_started:  # the shift reaches this fleet now
            self._shifts_started.add(i)
            self.metrics.record_shift(self.shifts[i].name, self._shift_devices[i])
        plans = [self.shifts[i] for i in covering]
        session = replay.session
        rng = session_rng(self.config.seed, device.device_id, k)  # not the user: replicas differ
        for plan in plans:
            session = plan.op.apply(session, rng, self.shift_context)
        return session, "+".join(p.name for p in plans)

    async def _score(self, backbone: str, items: list) -> list[dict[str, SessionScore]]:
        replays, sessions, received = zip(*items, strict=True)
        by_method = {m: [r.get(m) for r in received] for m in self.config.generated}
        return await asyncio.to_thread(
            self.models[backbone].score, replays, sessions, self.config.methods, by_method
        )

    def _row(
        self,
        device: DeviceProfile,
        k: int,
        replay: Replay,
        shift: str,
        method: str,
        score: SessionScore,
        gen: Generated | None,
        ask: Ask | None,
    ) -> SessionRow:
        cost, tier = self.costs[device.backbone], self.config.compute_tiers[device.compute]
        net = self.config.network_classes[device.network]
        inference_s = cost.inference_s_per_sample[method] * score.num_samples * tier
        finetune_s = cost.device_s[method] * tier
        upload_s = generate_s = download_s = 0.0
        requested = ask is not None and ask.decision.request
        # the embedding is computed once, for the drift score and an embedding upload alike
        embedded = ask is not None and ask.fingerprint is not None
        if embedded or (gen is not None and requested and device.upload == "embedding"):
            inference_s += cost.embed_s[method] * tier
        if gen is not None and requested:
            upload_s, generate_s = net.transfer_s(gen.bytes_up), gen.generate_s
            download_s = net.transfer_s(gen.bytes_down) if gen.params is not None else 0.0
        latency_s = upload_s + generate_s + download_s + inference_s + finetune_s
        c = self.config
        return SessionRow(
            run_id=c.run_id,
            scenario=c.scenario,
            dataset=c.dataset,
            backbone=device.backbone,
            method=method,
            device_id=device.device_id,
            user_id=device.user_id,
            session_index=k,
            source_session=replay.source_session,
            network_class=device.network,
            compute_tier=device.compute,
            upload_mode=device.upload,
            auc=score.auc,
            accuracy=score.accuracy,
            logloss=score.logloss,
            num_samples=score.num_samples,
            upload_s=upload_s,
            generate_s=generate_s,
            download_s=download_s,
            inference_s=inference_s,
            finetune_s=finetune_s,
            latency_s=latency_s,
            bytes_up=gen.bytes_up if gen else 0,
            bytes_down=gen.bytes_down if gen and gen.params is not None else 0,
            shift=shift,
            shift_active=bool(shift),
            fallback=requested and (gen is None or gen.params is None),
            sim_time_s=device.start_s[k] + latency_s,
            wall_time=time.time(),
            generate_server_s=gen.server_s if gen else 0.0,
            attempts=gen.attempts if gen else 0,
            model_version=gen.version if gen else "",
            requests=gen.requests if gen else 0,
            policy=ask.policy if ask else "",
            decision=ask.decision.reason if ask else "",
            params_age=ask.age if ask and not requested else (0 if gen and gen.params else -1),
            drift=ask.drift if ask else math.nan,
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
