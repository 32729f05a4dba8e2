"""Generator overload benchmark: one replica offered several times the requests it can serve,
over HTTP and through a handle, with Serve's queues bounded and unbounded, to show what the
bound buys: overload becomes fast 503s (HTTP, with Retry-After) or `BackPressureError`s
(handle) instead of a queue whose wait and memory grow with the overload.

    .venv/bin/python benchmarks/bench_overload.py              # ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_overload.py --seconds 5  # shorter phases

Requests are the phone's raw upload for CK+48 MobileNetV3-Small DUET: one 1x48x48 float32
frame as a binary frame (9.3 kB over HTTP). Load is open loop: requests start at a fixed
rate whatever happens to earlier ones (a fleet of phones does not wait for each other), at
``--overload`` times the capacity measured first (closed loop, 64 in flight), with at most
``--max-outstanding`` open at once on the client side (sockets). Three deployments:

    default     max_ongoing_requests 1024, max_queued_requests 1024 (actors/service/serve_app.py)
    tight       64 ongoing, 64 queued: what a latency bound for single-device calls wants
    unbounded   1024 ongoing, max_queued_requests -1 (Serve's own default: no limit)

Memory is each process's resident high-water mark (VmHWM,
actors/observability/serve_memory.py), reset
before each phase and reported as growth over the resident size at that moment: the replica
and the HTTP proxy for HTTP; the replica and the caller (this process, where a handle queues)
for the handle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
import ray
import torch
from ray import serve
from ray.serve.exceptions import BackPressureError

from actors.observability.serve_memory import (
    memory,
    process_memory,
    reset_peak,
    reset_process_peak,
    serve_processes,
)
from actors.service import wire
from actors.service.messages import GenerateRequest
from actors.service.serve_app import MAX_ONGOING_REQUESTS, MAX_QUEUED_REQUESTS, build_app
from duet.builders import mobilenet_umn
from duet.checkpoint import save_checkpoint
from duet.model import DeviceModel

# ---------------------------------------------------------------------------------------------
APP, KEY = "overload", "ck/mobilenet_v3_small/duet"
DEPLOYMENTS = {
    "default": {
        "max_ongoing_requests": MAX_ONGOING_REQUESTS,
        "max_queued_requests": MAX_QUEUED_REQUESTS,
    },
    "tight": {"max_ongoing_requests": 64, "max_queued_requests": 64},
    "unbounded": {"max_ongoing_requests": MAX_ONGOING_REQUESTS, "max_queued_requests": -1},
}
CAPACITY_IN_FLIGHT = 64
MIB = 2**20
# ---------------------------------------------------------------------------------------------


def make_checkpoint(root: Path) -> Path:
    torch.manual_seed(0)
    meta = {
        "dataset": "ck",
        "kind": "images",
        "height": 48,
        "width": 48,
        "channels": 1,
        "realtime_size": 1,
    }
    model = DeviceModel(mobilenet_umn("small", "duet", 7, in_channels=1, head_hidden=128))
    return save_checkpoint(model, root / "mnv3s", info={"dataset_meta": meta})


def frame_request(i: int) -> GenerateRequest:
    pixels = np.random.default_rng(i).random((1, 48, 48), dtype=np.float32)
    return GenerateRequest(f"d{i}", KEY, pixels=pixels)


Send = Callable[[int], Awaitable[str]]  # request i -> "ok" | "rejected" | "error"


def http_sender(client: httpx.AsyncClient, bodies: list[bytes]) -> Send:
    async def send(i: int) -> str:
        r = await client.post(
            "/v1/generate",
            content=bodies[i % len(bodies)],
            headers={"content-type": wire.FRAME_TYPE},
        )
        if r.status_code == 503:
            assert "retry-after" in r.headers, "a 503 without Retry-After"
            return "rejected"
        return "ok" if r.status_code == 200 else "error"

    return send


def handle_sender(handle, requests: list[GenerateRequest]) -> Send:
    async def send(i: int) -> str:
        try:
            await handle.generate.remote(requests[i % len(requests)])
        except BackPressureError:
            return "rejected"
        return "ok"

    return send


async def closed_loop(send: Send, in_flight: int, seconds: float) -> float:
    """Requests/s served with ``in_flight`` callers each sending the next on an answer."""
    done, end = 0, time.perf_counter() + seconds

    async def caller(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < end:
            served = await send(i) == "ok"  # not `done += await ...`: that reads done before
            done += served
            i += in_flight

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(in_flight)))
    return done / (time.perf_counter() - start)


async def open_loop(send: Send, rate: float, seconds: float, max_outstanding: int) -> dict:
    """Start ``rate`` requests/s for ``seconds`` regardless of answers; tally the outcomes."""
    outcomes: dict[str, int] = {"ok": 0, "rejected": 0, "error": 0, "not sent (client cap)": 0}
    latency_s: dict[str, list[float]] = {"ok": [], "rejected": []}
    tasks: set[asyncio.Task] = set()
    peak_outstanding = 0

    async def one(i: int) -> None:
        began = time.perf_counter()
        try:
            outcome = await send(i)
        except Exception:  # noqa: BLE001 - counted, not fatal: the benchmark goes on
            outcome = "error"
        outcomes[outcome] += 1
        if outcome in latency_s:
            latency_s[outcome].append(time.perf_counter() - began)

    start, sent = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(int(elapsed * rate) - sent):
            sent += 1
            if len(tasks) >= max_outstanding:
                outcomes["not sent (client cap)"] += 1
                continue
            task = asyncio.create_task(one(sent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        peak_outstanding = max(peak_outstanding, len(tasks))
        await asyncio.sleep(0.002)
    await asyncio.gather(*tasks)
    wall_s = time.perf_counter() - start

    def pct(k: str, q: float) -> float:
        return float(np.percentile(latency_s[k], q)) if latency_s[k] else float("nan")

    return {
        "offered": sent,
        "offered_per_s": sent / seconds,
        **outcomes,
        "served_per_s": outcomes["ok"] / wall_s,
        "peak_outstanding": peak_outstanding,
        "p50_s": pct("ok", 50),
        "p99_s": pct("ok", 99),
        "rejected_p50_s": pct("rejected", 50),
    }


async def deploy(checkpoint: Path, limits: dict[str, int]):
    args = {"checkpoints": {KEY: str(checkpoint)}, **limits}
    handle = serve.run(
        build_app(args), name=APP, route_prefix="/", logging_config={"enable_access_log": False}
    )
    await handle.generate.remote(frame_request(0))  # warm: weights loaded, first forward done
    return handle


async def phase(path: str, send: Send, rate: float, args, watch: dict) -> dict:
    """One overload phase with memory growth per watched process (``"caller"`` = this one)."""
    reset_peak(watch)
    reset_process_peak()
    base = {**memory(watch), "caller": process_memory()}
    result = await open_loop(send, rate, args.seconds, args.max_outstanding)
    after = {**memory(watch), "caller": process_memory()}
    grew = {k: (after[k]["peak_rss_bytes"] - base[k]["rss_bytes"]) / MIB for k in base}
    result["peak_growth_mib"] = {
        k.split()[0]: round(v, 1)
        for k, v in grew.items()
        if path == "http" or not k.startswith("proxy")
    }
    result["baseline_rss_mib"] = {
        k.split()[0]: round(v["rss_bytes"] / MIB, 1) for k, v in base.items()
    }
    return result


async def bench(args, checkpoint: Path, port: int) -> list[dict]:
    bodies = [wire.encode_request(frame_request(i)) for i in range(64)]
    requests = [frame_request(i) for i in range(64)]
    limits = httpx.Limits(max_connections=args.max_outstanding, max_keepalive_connections=256)
    rows = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=300
    ) as client:
        for name, limits_ in DEPLOYMENTS.items():
            handle = await deploy(checkpoint, limits_)
            watch = serve_processes(APP)
            senders = {
                "http": http_sender(client, bodies),
                "handle": handle_sender(handle, requests),
            }
            for path, send in senders.items():
                capacity = await closed_loop(send, CAPACITY_IN_FLIGHT, args.capacity_seconds)
                rate = args.overload * capacity
                print(
                    f"{name} {path}: capacity {capacity:.0f}/s, offering {rate:.0f}/s", flush=True
                )
                row = {
                    "deployment": name,
                    **limits_,
                    "path": path,
                    "capacity_per_s": capacity,
                    **await phase(path, send, rate, args, watch),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| deployment | path | capacity/s | offered/s | ok | rejected | errors | client cap "
        "| ok p50 s | ok p99 s | rejected p50 s | peak in flight "
        "| peak RSS growth MiB (replica / proxy or caller) |"
    )
    lines = [head, "|" + "---|" * 2 + "---:|" * 11]
    for r in rows:
        growth = r["peak_growth_mib"]
        other = growth.get("proxy", growth.get("caller"))
        lines.append(
            f"| {r['deployment']} | {r['path']} | {r['capacity_per_s']:.0f} "
            f"| {r['offered_per_s']:.0f} "
            f"| {r['ok']:,} | {r['rejected']:,} | {r['error']:,} | {r['not sent (client cap)']:,} "
            f"| {r['p50_s']:.2f} | {r['p99_s']:.2f} | {r['rejected_p50_s']:.3f} "
            f"| {r['peak_outstanding']:,} "
            f"| {growth['replica']:.0f} / {other:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="length of each overload phase")
    p.add_argument("--capacity-seconds", type=float, default=5.0)
    p.add_argument("--overload", type=float, default=4.0, help="offered rate / capacity")
    p.add_argument("--max-outstanding", type=int, default=4096, help="client-side open requests")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(bench(args, make_checkpoint(Path(tmp)), port))
    finally:
        serve.shutdown()
        ray.shutdown()
    print(
        f"\n{platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, "
        f"{args.seconds:.0f} s per phase at {args.overload:g}x capacity\n"
    )
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
