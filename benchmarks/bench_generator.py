"""Generator service benchmark: in-process PPG ceiling vs Ray Serve handle (per-device calls,
served by @serve.batch; and client-side batches), plus download sizes per backbone.

    .venv/bin/python benchmarks/bench_generator.py            # ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_generator.py --quick    # fewer rounds

Throughput is parameter sets (devices) per second; latency is per device, from the call
to its parameters being in the caller's hands. "N concurrent devices" means N requests in
flight at once: N tasks awaiting one handle call each, or one client-side batch of N.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from actors.generator import GenerateBatchRequest, GenerateRequest, GeneratorCore
from duet.builders import mobilenet_umn, sequence_umn
from duet.checkpoint import save_checkpoint
from duet.model import DeviceModel

# ---------------------------------------------------------------------------------------------
NUM_ITEMS = 3706  # MovieLens-1M's item count; generation cost does not depend on it
REALTIME_SIZE = 10  # R, the pipelines' default
CONCURRENCY = (1, 64, 1024)
MAX_BATCH_SIZE = 64  # the deployment's default @serve.batch window
KEY = "ml/gru4rec/duet"
NETWORKS_MBPS = {
    "4G 5 MB/s": 5,
    "4G 15 MB/s": 15,
    "5G 50 MB/s": 50,
    "5G 100 MB/s": 100,
}  # DESIGN §3
# ---------------------------------------------------------------------------------------------


def make_checkpoint(root: Path) -> Path:
    torch.manual_seed(0)
    meta = {"dataset": "ml", "num_items": NUM_ITEMS, "realtime_size": REALTIME_SIZE}
    model = DeviceModel(sequence_umn("gru4rec", "duet", NUM_ITEMS))
    return save_checkpoint(model, root / "gru4rec", info={"dataset_meta": meta})


def requests(n: int, seed: int = 0, dtype: str = "float32") -> list[GenerateRequest]:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, NUM_ITEMS + 1, (n, REALTIME_SIZE))
    return [GenerateRequest(f"d{i}", KEY, items=items[i], dtype=dtype) for i in range(n)]


def stats(name: str, n: int, devices: int, wall_s: float, lat_s: list[float]) -> dict:
    lat_ms = np.asarray(lat_s) * 1e3
    return {"way": name, "n": n, "devices": devices, "sets_per_s": devices / wall_s,
            "p50_ms": float(np.percentile(lat_ms, 50)), "p99_ms": float(np.percentile(lat_ms, 99))}  # fmt: skip


def rounds_for(n: int, quick: bool) -> int:
    return max(2, (400 if quick else 1500) // n) if n > 1 else (100 if quick else 300)


# ---- 1. the ceiling: one batched forward in this process ----------------------------------------
@torch.inference_mode()
def bench_ceiling(ckpt: Path, n: int, rounds: int) -> dict:
    model = GeneratorCore.from_checkpoints({KEY: ckpt}).models[KEY].model
    items = torch.from_numpy(np.stack([r.items for r in requests(n)]))  # (N, R)
    model.generate(*model.device_inputs(items), n)  # warm-up
    lat = []
    for _ in range(rounds):
        start = time.perf_counter()
        params = model.generate(*model.device_inputs(items), n)
        [(w.numpy(), b.numpy()) for w, b in params]
        lat.append(time.perf_counter() - start)  # every device of the batch waits for all of it
    return stats(
        "in-process batched PPG (ceiling)",
        n,
        n * rounds,
        sum(lat),
        [t for t in lat for _ in range(n)],
    )


# ---- 2./3. through the Serve handle --------------------------------------------------------------
async def bench_per_device(handle, n: int, rounds: int) -> tuple[dict, list]:
    reqs, lat, responses = requests(n), [], []

    async def one(r):
        start = time.perf_counter()
        resp = await handle.generate.remote(r)
        lat.append(time.perf_counter() - start)
        return resp

    await asyncio.gather(*[one(r) for r in reqs[: min(n, 64)]])  # warm-up
    lat.clear()
    start = time.perf_counter()
    for _ in range(rounds):
        responses = await asyncio.gather(*[one(r) for r in reqs])
    wall = time.perf_counter() - start
    return stats(
        "Serve handle, per-device calls (@serve.batch)", n, n * rounds, wall, lat
    ), responses


async def bench_client_batched(handle, n: int, rounds: int) -> tuple[dict, list]:
    reqs, lat = requests(n), []
    await handle.generate_many.remote(reqs)  # warm-up
    start = time.perf_counter()
    for _ in range(rounds):
        t = time.perf_counter()
        responses = await handle.generate_many.remote(reqs)
        lat.extend([time.perf_counter() - t] * n)
    wall = time.perf_counter() - start
    return stats(
        "Serve handle, client-side list of requests (generate_many)", n, n * rounds, wall, lat
    ), responses


async def bench_columnar(handle, n: int, rounds: int) -> tuple[dict, list]:
    reqs = requests(n)
    batch = GenerateBatchRequest(
        [r.device_id for r in reqs], KEY, items=np.stack([r.items for r in reqs])
    )
    await handle.generate_batch.remote(batch)  # warm-up
    lat, start = [], time.perf_counter()
    for _ in range(rounds):
        t = time.perf_counter()
        responses = (await handle.generate_batch.remote(batch)).split()
        lat.extend([time.perf_counter() - t] * n)
    wall = time.perf_counter() - start
    return stats(
        "Serve handle, client-side columnar batch (generate_batch)", n, n * rounds, wall, lat
    ), responses


def server_ms_per_device(responses) -> float:
    batches = {(r.batch_size, r.batch_generate_s) for r in responses}
    return 1e3 * sum(s for _, s in batches) / sum(b for b, _ in batches)


# ---- download sizes --------------------------------------------------------------------------
def download_sizes() -> list[tuple[str, int, int, int]]:
    """(backbone and head, dynamic params, float32 bytes, float16 bytes) per device."""
    cfgs = [(b, sequence_umn(b, "duet", NUM_ITEMS)) for b in ("sasrec", "gru4rec", "din")]
    for variant in ("large", "small"):
        for hidden, note in ((128, "CK+48 1x48x48, head_hidden=128"), (1280, "head_hidden=1280")):
            cfgs.append(
                (
                    f"mobilenet_v3_{variant} ({note})",
                    mobilenet_umn(variant, "duet", 7, in_channels=1, head_hidden=hidden),
                )
            )
    cfgs.append(
        (
            "mobilenet_v3_small (torchvision head 1024)",
            mobilenet_umn("small", "duet", 7, in_channels=1, head_hidden=1024),
        )
    )
    return [
        (name, c.classifier.num_params, 4 * c.classifier.num_params, 2 * c.classifier.num_params)
        for name, c in cfgs
    ]


# ---- report -------------------------------------------------------------------------------------
def print_report(rows: list[dict], server_ms: dict, sizes, args) -> None:
    print(f"\n## generator service ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"CPython {platform.python_version()}, torch {torch.__version__})\n")  # fmt: skip
    print("| devices in flight | way | sets/s | p50 (ms) | p99 (ms) | ratio to ceiling |")
    print("|---:|---|---:|---:|---:|---:|")
    ceiling = {r["n"]: r["sets_per_s"] for r in rows if r["way"].startswith("in-process")}
    for r in rows:
        print(
            f"| {r['n']} | {r['way']} | {r['sets_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['sets_per_s'] / ceiling[r['n']]:.0%} |"
        )
    print("\nServer-side generation time per device (replica, `batch_generate_s / batch_size`):\n")
    for label, ms in server_ms.items():
        print(f"- {label}: {ms:.3f} ms")
    print(
        "\n| backbone (dynamic layers) | params | float32 bytes | float16 bytes | "
        + " | ".join(f"f16 at {k} (ms)" for k in NETWORKS_MBPS)
        + " |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(NETWORKS_MBPS))
    for name, params, b32, b16 in sizes:
        times = " | ".join(f"{1e3 * b16 / (mbps * 1e6):.2f}" for mbps in NETWORKS_MBPS.values())
        print(f"| {name} | {params:,} | {b32:,} | {b16:,} | {times} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replica-cpus", type=int, default=1, help="torch threads = Ray CPUs")
    args = parser.parse_args()
    import ray
    from ray import serve

    from actors.serve_app import APP_NAME, build_app

    ckpt = make_checkpoint(Path(tempfile.mkdtemp(prefix="bench_generator_")))
    torch.set_num_threads(args.replica_cpus)  # the ceiling gets what one replica gets
    rows = [bench_ceiling(ckpt, n, rounds_for(n, args.quick)) for n in CONCURRENCY]
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=300 * 1024**2, log_to_driver=False
    )
    app = build_app(
        {
            "checkpoints": {KEY: str(ckpt)},
            "max_batch_size": MAX_BATCH_SIZE,
            "num_cpus": args.replica_cpus,
        }
    )
    handle = serve.run(
        app, name=APP_NAME, route_prefix=None, logging_config={"enable_access_log": False}
    )
    server_ms = {}

    async def serve_rows():
        for n in CONCURRENCY:
            row, resp = await bench_per_device(handle, n, rounds_for(n, args.quick))
            rows.append(row)
            if n >= 64:
                server_ms[f"@serve.batch, {n} in flight (max_batch_size {MAX_BATCH_SIZE})"] = (
                    server_ms_per_device(resp)
                )
            row, resp = await bench_client_batched(handle, n, rounds_for(n, args.quick))
            rows.append(row)
            if n >= 64:
                server_ms[f"client-side list of {n} (generate_many)"] = server_ms_per_device(resp)
            row, resp = await bench_columnar(handle, n, rounds_for(n, args.quick))
            rows.append(row)
            if n >= 64:
                server_ms[
                    f"client-side columnar batch of {n} (generate_batch, incl. validation)"
                ] = server_ms_per_device(resp)

    try:
        asyncio.run(serve_rows())
    finally:
        serve.shutdown()
        ray.shutdown()
    order = {w: i for i, w in enumerate(dict.fromkeys(r["way"] for r in rows))}
    rows.sort(key=lambda r: (r["n"], order[r["way"]]))
    print_report(rows, server_ms, download_sizes(), args)


if __name__ == "__main__":
    main()
