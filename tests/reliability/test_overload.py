"""The generator under load it cannot serve: past ``max_ongoing_requests`` + ``max_queued_requests``
Serve refuses (HTTP 503 with Retry-After, `BackPressureError` through a handle) instead of
queueing without bound, the fleet retries after the server's Retry-After, and the replica
serves a good request afterwards. A 1 GB body is refused from its Content-Length while the
client is still sending, without the replica reading it."""

from __future__ import annotations

import asyncio
import select
import socket
import time

import numpy as np
import pytest

from actors.devices.config import FleetConfig, RetryPolicy
from actors.devices.gateway import GeneratorGateway
from actors.devices.profiles import COMPUTE_TIERS, NETWORK_CLASSES
from actors.service.messages import GenerateBatchRequest, GenerateRequest

from .faults import free_port

ray = pytest.importorskip("ray")
httpx = pytest.importorskip("httpx")
from ray.serve.exceptions import BackPressureError  # noqa: E402 - after the skip

APP, KEY = "overload", "din/duet"
RETRY_AFTER_S = 2
ITEMS = [5, 17, 3, 42]
GIB = 10**9


# ---- the fleet side: backpressure is retried, after the server's Retry-After ------------------
class Overloaded:
    """A generator client that refuses ``times`` calls with Serve's backpressure, then answers."""

    def __init__(self, times: int, retry_after_s: float):
        self.times, self.retry_after_s, self.calls = times, retry_after_s, []

    async def agenerate_batch(self, batch: GenerateBatchRequest) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.times:
            raise BackPressureError(8, 8, retry_after_s=self.retry_after_s)
        return "parameters"


def gateway(client: Overloaded, retry: RetryPolicy) -> GeneratorGateway:
    config = FleetConfig(
        run_id="r",
        scenario="s",
        dataset="d",
        methods=("base", "duet"),
        sessions_per_device=1,
        model_keys={},
        network_classes=NETWORK_CLASSES,
        compute_tiers=COMPUTE_TIERS,
        retry=retry,
    )
    return GeneratorGateway(client, {}, config)  # type: ignore[arg-type]


def test_backpressure_is_retried_after_the_servers_retry_after():
    client = Overloaded(times=2, retry_after_s=0.2)
    request = GenerateBatchRequest(["d0"], KEY)
    policy = RetryPolicy(backoff_s=0.001, retries=3, deadline_s=30)
    response, attempts, _ = asyncio.run(gateway(client, policy)._with_retries(request))
    assert (response, attempts) == ("parameters", 3)
    waits = np.diff(client.calls)
    assert (waits >= 0.2).all()  # the server's hint, not the 1 ms backoff
    assert policy.delay_s(1, retry_after_s=60) == policy.max_backoff_s  # a hint is capped


def test_backpressure_past_the_retries_falls_back():
    client = Overloaded(times=10, retry_after_s=0.0)
    policy = RetryPolicy(backoff_s=0.001, retries=2)
    response, attempts, _ = asyncio.run(
        gateway(client, policy)._with_retries(GenerateBatchRequest(["d0"], KEY))
    )
    assert response is None and attempts == 3 == len(client.calls)


# ---- Serve: bounded queues, 503 + Retry-After, still serving -------------------------------
@pytest.fixture(scope="module")
def app(checkpoints):
    """A generator that admits one request and queues one: each waits 0.3 s in the batch
    window, so a burst of concurrent requests overloads it."""
    from ray import serve

    from actors.service.serve_app import build_app

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = {
            "checkpoints": {KEY: str(checkpoints["duet"])},
            "max_ongoing_requests": 1,
            "max_queued_requests": 1,
            "retry_after_s": RETRY_AFTER_S,
            "batch_wait_timeout_s": 0.3,
        }
        handle = serve.run(
            build_app(args), name=APP, route_prefix="/", logging_config={"enable_access_log": False}
        )
        yield handle, port
    finally:
        serve.shutdown()
        ray.shutdown()


def body(device: str) -> dict:
    return {"device_id": device, "model_key": KEY, "items": ITEMS}


async def burst(port: int, n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:
        return await asyncio.gather(
            *(client.post("/v1/generate", json=body(f"d{i}")) for i in range(n))
        )


def test_http_overload_gets_503_with_retry_after_then_serves(app):
    handle, port = app
    responses = asyncio.run(burst(port, 32))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and codes.count(200) >= 1 and codes.count(503) >= 1, codes
    assert all(
        r.headers["retry-after"] == str(RETRY_AFTER_S) for r in responses if r.status_code == 503
    )
    good = httpx.post(f"http://127.0.0.1:{port}/v1/generate", json=body("after"), timeout=60)
    assert good.status_code == 200 and good.json()["device_id"] == "after"


def test_handle_overload_raises_backpressure_then_serves(app):
    handle, _ = app
    calls = [handle.generate.remote(GenerateRequest(f"h{i}", KEY, items=ITEMS)) for i in range(16)]
    outcomes = []
    for call in calls:
        try:
            outcomes.append(call.result().device_id)
        except BackPressureError as exc:
            assert exc.retry_after_s == RETRY_AFTER_S
            outcomes.append("refused")
    assert 1 <= outcomes.count("refused") < len(calls), outcomes
    assert handle.generate.remote(GenerateRequest("after", KEY, items=ITEMS)).result().params


# ---- a 1 GB body ------------------------------------------------------------------------------
def send_declared_gigabyte(port: int) -> tuple[bytes, int]:
    """POST with ``Content-Length: 1 GB``, streaming the body slowly (64 KiB per ms) and
    watching for an answer between chunks; returns (status line, bytes sent by then)."""
    head = (
        f"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nContent-Length: {GIB}\r\n\r\n"
    ).encode()
    chunk, sent = b" " * 65536, 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        while sent < GIB:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
            time.sleep(0.001)
        sock.settimeout(60)
        return sock.recv(4096).split(b"\r\n", 1)[0], sent


def test_a_1gb_body_is_refused_before_it_is_read(app):
    from actors.observability.serve_memory import memory, reset_peak, serve_processes

    _, port = app
    processes = serve_processes(APP)
    reset_peak(processes)
    before = memory(processes)
    status, sent = send_declared_gigabyte(port)
    after = memory(processes)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert sent < GIB  # the answer came while the client was still sending
    grew = {k: after[k]["peak_rss_bytes"] - before[k]["rss_bytes"] for k in processes}
    print(f"1 GB body: 413 after {sent:,} bytes sent; peak RSS growth {grew}")  # -s shows it
    [replica] = [k for k in processes if k.startswith("replica")]
    assert grew[replica] < 64 * 2**20, grew  # it never held the body (1 GB would show)
    assert all(g < 256 * 2**20 for g in grew.values()), grew  # the proxy kept only what arrived
