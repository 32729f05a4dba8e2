"""The fleet's side of the generator: micro-batched columnar requests, retries and fallback.

Devices' requests for one (backbone, method, upload mode) are micro-batched into one
`GenerateBatchRequest` (the generator's fast path). If the generator cannot be reached
(errors, timeouts or backpressure past ``retries`` or ``deadline_s``, with exponential
backoff in between, or the server's Retry-After when longer) every device of the request
falls back: it scores with the method's global classifier and its row says ``fallback``.
A request the generator refuses as invalid is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from actors.devices.batching import MicroBatcher
from actors.devices.config import FleetConfig
from actors.devices.fleet_metrics import FleetMetrics, NoMetrics
from actors.devices.ondevice import DeviceModels, NumpyParams
from actors.devices.profiles import DeviceProfile
from actors.devices.replay import Replay
from actors.devices.uploads import UploadRows, build_request, upload_rows
from actors.service.errors import GeneratorError
from actors.service.generator_client import GeneratorClient
from actors.service.messages import GenerateBatchRequest, GenerateBatchResponse

log = logging.getLogger(__name__)


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
                partial(self._call, slot),
                self.config.batching.max_batch_devices,
                self.config.batching.batch_wait_s,
            )
        return await self._batchers[slot].submit((device.device_id, replay, session))

    async def _call(
        self, slot: tuple[str, str, str], items: list[tuple[int, Replay, Any]]
    ) -> list[Generated]:
        """One columnar request for a micro-batch of devices: a row per device, or, for a
        history-conditioned model, a row per scored impression of each device's session."""
        backbone, method, mode = slot
        key = self.config.model_keys[f"{backbone}/{method}"]
        models = self.models[backbone]
        model = models.models[method]
        rows = upload_rows(model, [(r, s) for _, r, s in items])
        if not len(rows.owner):  # nothing to condition on: every device falls back at once
            return [Generated(None, 0, 0, 0.0, 0.0, 0, requests=0)] * len(items)
        request, up = await asyncio.to_thread(
            build_request, models, method, key, mode, self.config.batching.dtype, rows
        )
        response, attempts, elapsed_s = await self._with_retries(request)
        history = model.condition == "history"
        return _outcomes(response, rows, up, attempts, elapsed_s, history)

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


def _outcomes(
    response: GenerateBatchResponse | None,
    rows: UploadRows,
    up: np.ndarray,
    attempts: int,
    elapsed_s: float,
    history: bool,
) -> list[Generated]:
    """Each device's share of one request: its rows' uploads and parameters (one set, or
    with ``history`` one per impression), and a device downloads one parameter set per row.
    Without a response every device falls back."""
    out = []
    for i, sent in enumerate(rows.sent):
        mine = np.flatnonzero(rows.owner == i)  # this device's rows of the request
        n, bytes_up = len(mine), int(up[mine].sum())
        if response is None or not n:
            out.append(Generated(None, bytes_up, 0, elapsed_s, 0.0, attempts, requests=n))
            continue
        pick = mine if history else mine[0]  # (T', O, I) per impression, else (O, I)
        generated = Generated(
            [(w[pick], b[pick]) for w, b in response.params],
            bytes_up,
            n * response.download_bytes,
            elapsed_s,
            response.batch_generate_s * n / len(rows.owner),
            attempts,
            response.model_version,
            requests=n,
            sent=sent if history else None,
        )
        out.append(generated)
    return out
