"""The DUET generator as a Ray Serve application: handle methods, HTTP ingress, batching.

The deployment only builds a `GeneratorCore` and delegates. Endpoints:

    POST /v1/generate   JSON or binary frame (actors/service/wire.py documents both); the
                        response uses the request's encoding unless ``Accept`` names the other
    GET  /healthz       {"status": "ok", "models": n}
    GET  /v1/models     keys, versions, kinds, sample limits, parameter shapes

Bad requests answer 400 (malformed), 413 (body over ``max_body_bytes``), 415 (content
type) or 422 (valid JSON, invalid values) with {"error", "field", "message"}; through a
handle the same `GeneratorError` subclass is raised. The replica keeps serving.

Overload is refused, not queued without end: a replica takes ``max_ongoing_requests`` at
once, each caller (the HTTP proxy, every handle) queues at most ``max_queued_requests`` more,
and past that Serve answers HTTP 503 with ``Retry-After`` (a handle raises
``BackPressureError``, which the fleet retries). Memory is then bounded by those two numbers
times the largest request (``max_body_bytes`` over HTTP); benchmarks/bench_overload.py
measures it.

Why a dict of models in one replica and not ``@serve.multiplexed``: a DUET checkpoint is
small (a PPG of a few MB; the backbone is only needed for raw uploads), so every model
fits in every replica and is loaded once at start, with no cold-load on a request path.
Multiplexing routes each model id to replicas that hold it and evicts by LRU; it pays off
when models are many and large, and it would split one `@serve.batch` window per model id
anyway. Here one batch window is shared and `GeneratorCore` groups it by model key, one
forward per key. Scaling out is ``num_replicas``; every replica serves every key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ray
import torch
from ray import serve
from ray.serve.config import BackpressureConfig
from starlette.requests import Request
from starlette.responses import Response

from actors.service import wire
from actors.service.errors import (
    BodyTooLargeError,
    GeneratorError,
    MalformedRequestError,
    UnsupportedMediaTypeError,
)
from actors.service.generator import GeneratorCore
from actors.service.messages import (
    GenerateBatchRequest,
    GenerateBatchResponse,
    GenerateRequest,
    GenerateResponse,
)
from actors.service.validation import prepare
from duet.registry import load_plugins

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
APP_NAME = "duet-generator"
MAX_BATCH_SIZE = 64  # devices per PPG forward; server time per device flattens out by ~64
BATCH_WAIT_TIMEOUT_S = 0.005  # a lone device waits at most this long for company
MAX_ONGOING_REQUESTS = 1024  # >= MAX_BATCH_SIZE, so a replica admits enough calls to fill batches
MAX_QUEUED_REQUESTS = 1024  # per caller, beyond the ongoing ones; then 503 / BackPressureError
RETRY_AFTER_S = 1.0  # Retry-After of a 503: about one more replica's worth of batches
HEALTH_CHECK_PERIOD_S = 2.0  # a dead replica is found (and replaced) within this; Serve's is 10
MAX_BODY_BYTES = 1 << 20  # 1 MiB: 10 float32 embeddings are 1.3 kB, a 3x224x224 frame 602 kB
# ---------------------------------------------------------------------------------------------


@serve.deployment(
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    max_queued_requests=MAX_QUEUED_REQUESTS,
    backpressure_config=BackpressureConfig(retry_after_s=RETRY_AFTER_S),
    health_check_period_s=HEALTH_CHECK_PERIOD_S,
    ray_actor_options={"num_cpus": 1},
)
class DuetGenerator:
    """One replica: every served checkpoint, one shared batch window.

    Args:
        checkpoints (list[str] | dict[str, str]): run directories, or ``{model_key: dir}``.
        max_samples (int | None): real-time sample limit for every model. Default: each
            checkpoint's ``dataset_meta.realtime_size``.
        max_batch_size (int): `@serve.batch` window size. Default: 64.
        batch_wait_timeout_s (float): `@serve.batch` window time. Default: 0.005.
        max_body_bytes (int): HTTP bodies larger than this get 413. Default: 1 MiB.
        plugins (list[str]): plugin modules (duet/registry.py) imported before the
            checkpoints load, for checkpoints of a plugin's method. Default: none.
        plugin_root (str | None): where the plugins are found besides ``sys.path``.
    """

    def __init__(
        self,
        checkpoints: Sequence[str] | Mapping[str, str],
        max_samples: int | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
        batch_wait_timeout_s: float = BATCH_WAIT_TIMEOUT_S,
        max_body_bytes: int = MAX_BODY_BYTES,
        plugins: Sequence[str] = (),
        plugin_root: str | None = None,
    ):
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        load_plugins(plugins, plugin_root)
        torch.set_num_threads(_replica_cpus())
        self.core = GeneratorCore.from_checkpoints(checkpoints, max_samples=max_samples)
        self.max_body_bytes = max_body_bytes
        # @serve.batch adds these setters at runtime; its type stubs do not declare them
        self._generate_batch.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]
        batched = self._generate_batch
        batched.set_batch_wait_timeout_s(batch_wait_timeout_s)  # type: ignore[attr-defined]
        log.info("serving %s", self.core.keys())

    # ---- handle methods -------------------------------------------------------------------
    async def generate(self, request: GenerateRequest | dict[str, Any]) -> GenerateResponse:
        """One device's parameters; shares a `@serve.batch` forward with concurrent callers.

        Raises:
            GeneratorError: the request is invalid (validated before it joins a batch, so a
                bad request never fails its batch-mates).
        """
        prepared = prepare(self.core.models, _as_request(request))
        return await self._generate_batch(prepared)

    async def generate_many(
        self, requests: Sequence[GenerateRequest | dict[str, Any]], return_exceptions: bool = False
    ) -> list[GenerateResponse | GeneratorError]:
        """A client-side batch: one forward for all valid requests, outputs in input order.

        Args:
            requests: the devices' requests.
            return_exceptions (bool): put each bad request's `GeneratorError` in its slot
                instead of raising the first one (field prefixed ``requests[i].``).
        """
        if not isinstance(requests, list | tuple) or not requests:
            raise MalformedRequestError("requests must be a non-empty list", "requests")
        out: list[Any] = [None] * len(requests)
        good, prepared = [], []
        for i, r in enumerate(requests):
            try:
                where = f"requests[{i}]."
                prepared.append(prepare(self.core.models, _as_request(r, where), where))
                good.append(i)
            except GeneratorError as e:
                if not return_exceptions:
                    raise
                out[i] = e
        if prepared:
            results = self.core.generate_prepared(prepared)  # inline: see generate_batch
            for i, r in zip(good, results, strict=True):
                out[i] = r
        return out

    async def generate_batch(self, batch: GenerateBatchRequest) -> GenerateBatchResponse:
        """A columnar client-side batch (one model, stacked arrays): the fleet's fast path.

        Runs on the replica's event loop, not in a worker thread: the caller batched already,
        so there is nothing to gather meanwhile, and one forward at a time is what a 1-CPU
        replica can do anyway. In a thread the forward competed for the GIL with the loop and
        took ~2x as long on a loaded 2-core machine (1,024 devices: 15 ms inline vs 32 ms,
        median of 60 alternating calls). Other requests wait for the forward, which is
        ~15 ms at 1,024 devices; Serve's control plane runs on its own loop and does not.

        Raises:
            GeneratorError: any bad row; the field names it (``items[3]``).
        """
        return self.core.generate_batch(batch)

    def models(self) -> list[dict[str, Any]]:
        return self.core.describe()

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    async def _generate_batch(self, batch: list[Any]) -> list[GenerateResponse]:
        """Contract of ``@serve.batch``: called with a list of validated requests, returns a
        list of the same length and order. Fires when ``max_batch_size`` requests wait or
        ``batch_wait_timeout_s`` after the first, whichever comes first (both set in
        ``__init__``). An exception here fails every request of the batch, which is why
        validation happens before a request joins.
        """
        # the forward runs in a thread (torch releases the GIL): the loop fills the next batch
        responses = await asyncio.to_thread(self.core.generate_prepared, batch)
        if len(responses) != len(batch):
            raise RuntimeError(f"generated {len(responses)} responses for a batch of {len(batch)}")
        return responses

    # ---- HTTP ------------------------------------------------------------------------------
    async def __call__(self, request: Request) -> Response:
        path = request.url.path.removeprefix(request.scope.get("root_path", "")) or "/"
        try:
            if request.method == "GET" and path == "/healthz":
                return _json({"status": "ok", "models": len(self.core.models)})
            if request.method == "GET" and path == "/v1/models":
                return _json({"models": self.core.describe()})
            if request.method == "POST" and path == "/v1/generate":
                return await self._http_generate(request)
            return _json(
                {
                    "error": "NotFound",
                    "field": "path",
                    "message": f"no route {request.method} {path}",
                },
                404,
            )
        except GeneratorError as e:
            return Response(wire.error_body(e), e.status, media_type=wire.JSON_TYPE)

    async def _http_generate(self, request: Request) -> Response:
        # 1. content type and size, refused before the body is read where the header allows
        ctype = request.headers.get("content-type", wire.JSON_TYPE).split(";")[0].strip()
        if ctype not in (wire.JSON_TYPE, wire.FRAME_TYPE):
            raise UnsupportedMediaTypeError(
                f"content-type must be {wire.JSON_TYPE} or {wire.FRAME_TYPE}, got {ctype!r}",
                "content-type",
            )
        body = await self._read_body(request)
        # 2. decode, generate (single requests join the batch window), encode
        decoded = wire.decode_request(body, ctype)
        accept = request.headers.get("accept", ctype)
        out_type = (
            wire.FRAME_TYPE
            if wire.FRAME_TYPE in accept
            else wire.JSON_TYPE
            if wire.JSON_TYPE in accept
            else ctype
        )
        if isinstance(decoded, list):
            if out_type != wire.JSON_TYPE:
                raise UnsupportedMediaTypeError("a JSON batch is answered in JSON only", "accept")
            results = await self.generate_many(decoded)
            return _json({"responses": [r.to_json() for r in results]})
        resp = await self.generate(decoded)
        return Response(wire.encode_response(resp, out_type), media_type=out_type)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise BodyTooLargeError(
                f"body of {declared} bytes exceeds max_body_bytes={self.max_body_bytes}", "body"
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:  # chunked uploads without a length are cut off here
                raise BodyTooLargeError(
                    f"body exceeds max_body_bytes={self.max_body_bytes}", "body"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _replica_cpus() -> int:
    """Torch threads = the CPUs Ray reserved for this replica (at least 1). Ray exports
    OMP_NUM_THREADS only when the environment has none, so an inherited value (or torch's
    default of every core) would oversubscribe a 1-CPU replica next to the caller."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, int(cpus))


def _as_request(request: Any, where: str = "") -> GenerateRequest:
    if isinstance(request, GenerateRequest):
        return request
    return GenerateRequest.from_json(request, where)


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc), status, media_type=wire.JSON_TYPE)


def build_app(args: dict[str, Any]) -> serve.Application:
    """Application builder for ``serve deploy`` / ``serve run``
    (platform/serve/duet_generator.yaml).

    Args:
        args (dict): ``checkpoints`` (list of run dirs, or {key: dir}; required) and optional
            ``max_samples``, ``max_batch_size``, ``batch_wait_timeout_s``, ``max_body_bytes``,
            ``max_ongoing_requests``, ``max_queued_requests`` (-1: no bound), ``retry_after_s``,
            ``num_replicas`` (a fixed number) or ``autoscaling_config`` (Serve's own
            autoscaling, actors/service/autoscaling.py), ``num_cpus``, ``plugins``,
            ``plugin_root``.

    Raises:
        ValueError: missing ``checkpoints`` or an unknown key.
    """
    known = {
        "checkpoints",
        "max_samples",
        "max_batch_size",
        "batch_wait_timeout_s",
        "max_body_bytes",
        "max_ongoing_requests",
        "max_queued_requests",
        "retry_after_s",
        "num_replicas",
        "autoscaling_config",
        "num_cpus",
        "plugins",
        "plugin_root",
    }
    unknown = sorted(set(args) - known)
    if unknown or not args.get("checkpoints"):
        raise ValueError(
            f"build_app needs 'checkpoints' and accepts {sorted(known)}; unknown: {unknown}"
        )
    options = {
        "max_ongoing_requests": int(args.get("max_ongoing_requests", MAX_ONGOING_REQUESTS)),
        "max_queued_requests": int(args.get("max_queued_requests", MAX_QUEUED_REQUESTS)),
        "backpressure_config": BackpressureConfig(
            retry_after_s=float(args.get("retry_after_s", RETRY_AFTER_S))
        ),
        "ray_actor_options": {"num_cpus": float(args.get("num_cpus", 1))},
    }
    if "autoscaling_config" in args:  # Serve scales the replicas; no fixed number
        options["autoscaling_config"] = args["autoscaling_config"]
        options["num_replicas"] = None
    else:
        options["num_replicas"] = int(args.get("num_replicas", 1))
    kwargs = {
        k: args[k]
        for k in (
            "max_samples",
            "max_batch_size",
            "batch_wait_timeout_s",
            "max_body_bytes",
            "plugins",
            "plugin_root",
        )
        if k in args
    }
    # @serve.deployment turns the class into a Deployment; mypy still sees the class
    deployment = DuetGenerator.options(**options)  # type: ignore[attr-defined]
    return deployment.bind(args["checkpoints"], **kwargs)
