"""Generator service benchmark: in-process ceilings vs the Ray Serve handle (per-device calls
served by @serve.batch, a list of requests, and a columnar batch), plus download sizes.

    .venv/bin/python benchmarks/bench_generator.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_generator.py --quick    # fewer rounds
    .venv/bin/python benchmarks/bench_generator.py --neck gru # the paper's PPG neck
    .venv/bin/python benchmarks/bench_generator.py --ratio 1024 --repeats 5  # the target
    .venv/bin/python benchmarks/bench_generator.py --breakdown 1024  # where a round trip goes

Throughput is parameter sets (devices) per second in the median round; latency is per
device, from the call to its parameters being in the caller's hands (every device of a
batch waits for the whole batch). "N devices in flight" means N requests outstanding at
once: N tasks awaiting one handle call each, or one client-side batch of N.

Two ceilings, both in this process with the replica's torch thread count:
    forward only       `device_inputs` + `generate` + `.numpy()` views: the PPG's own cost,
                       no validation, no output copy.
    core in-process    `GeneratorCore.generate_batch`, the exact code the replica runs on a
                       columnar batch (validation, forward, conversion into one buffer).
The ceilings and the columnar Serve path are measured in alternating rounds after Ray and
Serve are up, so all three see the same background load (Serve's controller, the raylet,
other processes on a shared machine); the ratios are what to read, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from actors.service.generator import GeneratorCore
from actors.service.messages import GenerateBatchRequest, GenerateRequest
from duet.builders import mobilenet_umn, sequence_umn
from duet.checkpoint import save_checkpoint
from duet.model import DeviceModel

# ---------------------------------------------------------------------------------------------
NUM_ITEMS = 3706  # MovieLens-1M's item count; generation cost does not depend on it
REALTIME_SIZE = 10  # R, the pipelines' default
CONCURRENCY = (1, 64, 1024, 4096)
PER_DEVICE_MAX = 1024  # per-device calls and lists beyond this take minutes (~200 calls/s)
MAX_BATCH_SIZE = 64  # the deployment's default @serve.batch window
KEY = "ml/gru4rec/duet"
FORWARD, CORE = "forward only, in-process (ceiling)", "core.generate_batch, in-process (ceiling)"
SERVE = "Serve handle, columnar batch (generate_batch)"
REPLICA, FAULTS = "the replica's generate_batch", "page faults per in-process core call"
NETWORKS_MBPS = {
    "4G 5 MB/s": 5,
    "4G 15 MB/s": 15,
    "5G 50 MB/s": 50,
    "5G 100 MB/s": 100,
}  # the paper's Table 3 network classes
# ---------------------------------------------------------------------------------------------


def make_checkpoint(root: Path, neck: str = "mean") -> Path:
    torch.manual_seed(0)
    meta = {"dataset": "ml", "num_items": NUM_ITEMS, "realtime_size": REALTIME_SIZE}
    model = DeviceModel(sequence_umn("gru4rec", "duet", NUM_ITEMS, neck=neck))
    return save_checkpoint(model, root / "gru4rec", info={"dataset_meta": meta})


def requests(n: int, seed: int = 0) -> list[GenerateRequest]:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, NUM_ITEMS + 1, (n, REALTIME_SIZE))
    return [GenerateRequest(f"d{i}", KEY, items=items[i]) for i in range(n)]


def columnar(n: int, dtype: str) -> GenerateBatchRequest:
    reqs = requests(n)
    items = np.stack([r.items for r in reqs])
    return GenerateBatchRequest([r.device_id for r in reqs], KEY, items=items, dtype=dtype)


def stats(
    way: str, n: int, round_s: list[float], dtype: str = "float32", lat_s: list[float] | None = None
) -> dict:
    """Throughput from the median round (n devices each): the machine is shared, and a
    neighbour's burst in one round should not decide the row. Latency percentiles are per
    device; in a batch every device waits for the whole round, so they default to it."""
    ms = np.asarray(round_s if lat_s is None else lat_s) * 1e3
    return {
        "way": way,
        "n": n,
        "dtype": dtype,
        "sets_per_s": n / float(np.median(round_s)),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def rounds_for(n: int, quick: bool) -> int:
    """~6,000 device sets per way and batch size, within 20..300 rounds (quick: a quarter)."""
    low, high, sets = (10, 100, 1500) if quick else (20, 300, 6000)
    return min(high, max(low, sets // n))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---- ceilings and the columnar path, in alternating rounds ---------------------------------------
async def bench_columnar(
    core: GeneratorCore,
    handle,
    n: int,
    rounds: int,
    server_ms: dict,
    breakdown: list,
    forward_too: bool = True,
):
    """Rounds of: the float32 core, [forward only,] the float32 Serve call, then float16's
    core and Serve call. The forward runs after a core call, never right before one: the
    same PPG on the same rows warms the caches for whatever follows, and measured right
    after it the float32 core took 10.8-11.0 ms against 13.3-13.9 ms without it (same
    day, --ratio 1024), while the replica's forward is always cold. The forward-only
    ceiling is itself measured warm, after the core: ratios against it err low.
    ``forward_too=False`` leaves it out (the --ratio mode, which reports only core and
    Serve)."""
    model = core.models[KEY].model
    batches = {dt: columnar(n, dt) for dt in ("float32", "float16")}
    items = torch.from_numpy(batches["float32"].items)

    @torch.inference_mode()
    def forward():
        [(w.numpy(), b.numpy()) for w, b in model.generate(*model.device_inputs(items), n)]

    async def serve_call(dtype: str) -> float:
        start = time.perf_counter()
        resp = await handle.generate_batch.remote(batches[dtype])  # stacked params in hand
        elapsed = time.perf_counter() - start
        server.setdefault(dtype, []).append(resp.batch_generate_s)
        return elapsed

    ways: dict[tuple[str, str], list[float]] = {}
    server: dict[str, list[float]] = {}
    for _ in range(2):  # warm-up
        forward()
        core.generate_batch(batches["float32"])
        await serve_call("float32")
    server.clear()
    for _ in range(rounds):
        for dt, batch in batches.items():
            ways.setdefault((CORE, dt), []).append(timed(lambda b=batch: core.generate_batch(b)))
            if forward_too and dt == "float32":
                ways.setdefault((FORWARD, dt), []).append(timed(forward))
            ways.setdefault((SERVE, dt), []).append(await serve_call(dt))
    record_replica_times(n, ways, server, server_ms, breakdown)
    split_s = timed((await handle.generate_batch.remote(batches["float32"])).split)
    return [stats(way, n, lat, dt) for (way, dt), lat in ways.items()], split_s


def record_replica_times(
    n: int,
    ways: dict[tuple[str, str], list[float]],
    server: dict[str, list[float]],
    server_ms: dict,
    breakdown: list,
) -> None:
    """Per dtype, what the replica reported of ``n`` devices' rounds (``server``, seconds)
    beside the caller's timings (``ways``): its generate_batch per device in ``server_ms``
    (64 devices and more), and the medians of a round trip's parts in ``breakdown``
    (forward only, core in-process and in the replica, the Serve call)."""
    for dt, s in server.items():
        if n >= 64:
            server_ms[f"columnar batch of {n}, {dt} (incl. validation)"] = 1e3 * np.median(s) / n
        p50 = {way: 1e3 * np.median(lat) for (way, d), lat in ways.items() if d == dt}
        breakdown.append(
            {
                "n": n,
                "dtype": dt,
                "replica_ms": 1e3 * np.median(s),
                "forward_ms": 1e3 * np.median(ways.get((FORWARD, "float32"), [np.nan])),
                "core_ms": p50[CORE],
                "rt_ms": p50[SERVE],
            }
        )


# ---- where a round trip goes: stand-ins that only ship bytes ---------------------------------
class Shipper:
    """Answers a columnar request with nothing, or with a prebuilt array of the generator's
    answer size: what a call through Ray or Serve costs without the generator's work."""

    def __init__(self, rows: int, width: int, dtype: str):
        self.answer = np.ones((rows, width), dtype)

    async def nothing(self, batch: GenerateBatchRequest) -> None:
        return None

    async def answer_only(self, batch: GenerateBatchRequest) -> np.ndarray:
        return self.answer


async def bench_breakdown(
    core: GeneratorCore, handle, n: int, rounds: int, repeats: int, dtype: str
) -> list[dict]:
    """Per-call medians (ms) of the real path and of stand-ins, in alternating rounds, one
    dict per repeat: the in-process core, the Serve call, a plain Ray actor and a Serve
    deployment of `Shipper` (the same request in; nothing, or the answer's bytes, out).
    The stand-ins start once and are warmed once, like the generator."""
    import ray
    from ray import serve

    batch = columnar(n, dtype)
    width = core.generate_batch(batch).flat.shape[1]
    actor, shipper = start_shippers(n, width, dtype)
    replica_s: list[float] = []
    faults: list[int] = []

    def core_call():
        """The in-process core, counting this thread's minor page faults: glibc hands the
        answer's 8.6 MB buffers back to the kernel or keeps them, by heap state, and a call
        that gets them back faulted costs ~5 ms more."""
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        core.generate_batch(batch)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

    async def serve_call():
        replica_s.append((await handle.generate_batch.remote(batch)).batch_generate_s)

    ways = {
        "core in-process": core_call,  # on this loop, as in --ratio
        "Serve generate_batch": serve_call,
        "Ray actor, nothing back": lambda: actor.nothing.remote(batch),
        "Ray actor, answer's bytes back": lambda: actor.answer_only.remote(batch),
        "Serve, nothing back": lambda: shipper.nothing.remote(batch),
        "Serve, answer's bytes back": lambda: shipper.answer_only.remote(batch),
    }
    for _ in range(3):  # warm-up
        await one_round(ways)
    runs = []
    for _ in range(repeats):
        replica_s.clear()
        faults.clear()
        took = [await one_round(ways) for _ in range(rounds)]
        ms = {way: 1e3 * float(np.median([t[way] for t in took])) for way in ways}
        ms[REPLICA] = 1e3 * float(np.median(replica_s))
        ms[FAULTS] = float(np.median(faults))
        runs.append(ms)
    ray.kill(actor)
    serve.delete("shipper")
    return runs


def start_shippers(n: int, width: int, dtype: str) -> tuple[Any, Any]:
    """`Shipper` as a plain Ray actor and as a Serve deployment, answering ``n`` rows of
    ``width`` in ``dtype``; neither takes a CPU, so they start beside the generator's
    replica on the same 2-CPU cluster."""
    import ray
    from ray import serve

    actor = ray.remote(num_cpus=0)(Shipper).remote(n, width, dtype)
    shipper = serve.run(
        serve.deployment(Shipper, max_ongoing_requests=8, ray_actor_options={"num_cpus": 0}).bind(
            n, width, dtype
        ),
        name="shipper",
        route_prefix=None,
        logging_config={"enable_access_log": False},
    )
    return actor, shipper


async def one_round(ways: dict[str, Callable[[], object]]) -> dict[str, float]:
    """One call of every way in turn, in seconds; a way may return an awaitable (a Ray or
    Serve reference, a coroutine), which is awaited inside its own timing."""
    took = {}
    for way, call in ways.items():
        start = time.perf_counter()
        if inspect.isawaitable(result := call()):
            await result
        took[way] = time.perf_counter() - start
    return took


def print_breakdown(runs: list[dict], n: int, dtype: str) -> None:
    med = {way: float(np.median([r[way] for r in runs])) for way in runs[0]}
    print(f"\n{n} devices, {dtype}, median over {len(runs)} repeats of per-call medians (ms):\n")
    print("| way | ms a call |\n|---|---:|")
    for way, ms in med.items():
        print(f"| {way} | {ms:,.0f} |" if way == FAULTS else f"| {way} | {ms:.2f} |")
    ship_ray = med["Ray actor, answer's bytes back"] - med["Ray actor, nothing back"]
    ship_serve = med["Serve, answer's bytes back"] - med["Serve, nothing back"]
    rest = med["Serve generate_batch"] - med[REPLICA]
    stand_in = med["Serve, answer's bytes back"]
    print(
        f"\n- Ray's floor (a call with nothing back): {med['Ray actor, nothing back']:.2f} ms; "
        f"Serve's: {med['Serve, nothing back']:.2f} ms"
        f"\n- shipping the answer's bytes: {ship_ray:.2f} ms through a Ray actor, "
        f"{ship_serve:.2f} ms through Serve"
        f"\n- Serve round trip minus the replica's own generate_batch: {rest:.2f} ms; "
        f"the stand-in's floor plus shipping: {stand_in:.2f} ms"
        f"\n- ratio (core in-process / Serve round trip): "
        f"{med['core in-process'] / med['Serve generate_batch']:.0%}; 50% needs a round trip "
        f"of at most {2 * med['core in-process']:.1f} ms"
    )


# ---- the other Serve ways ------------------------------------------------------------------------
async def bench_per_device(handle, n: int, rounds: int, server_ms: dict) -> dict:
    reqs, lat, responses = requests(n), [], []

    async def one(r):
        start = time.perf_counter()
        resp = await handle.generate.remote(r)
        lat.append(time.perf_counter() - start)
        return resp

    await asyncio.gather(*[one(r) for r in reqs[: min(n, 64)]])  # warm-up
    lat.clear()
    round_s = []
    for _ in range(rounds):
        start = time.perf_counter()
        responses = await asyncio.gather(*[one(r) for r in reqs])
        round_s.append(time.perf_counter() - start)
    if n >= 64:
        batches = {(r.batch_size, r.batch_generate_s) for r in responses}
        ms = 1e3 * sum(s for _, s in batches) / sum(b for b, _ in batches)
        server_ms[f"@serve.batch, {n} per-device calls in flight"] = ms
    return stats("Serve handle, per-device calls (@serve.batch)", n, round_s, lat_s=lat)


async def bench_list(handle, n: int, rounds: int) -> dict:
    reqs = requests(n)
    await handle.generate_many.remote(reqs)  # warm-up
    lat = []
    for _ in range(rounds):
        start = time.perf_counter()
        await handle.generate_many.remote(reqs)
        lat.append(time.perf_counter() - start)
    return stats("Serve handle, list of requests (generate_many)", n, lat)


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
def print_report(
    rows: list[dict], server_ms: dict, breakdown: list, split_ms: dict, sizes, args
) -> None:
    print(
        f"\n## generator service ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
        f"CPython {platform.python_version()}, torch {torch.__version__}, "
        f"gru4rec DUET, {args.neck} neck, replica and ceilings with {args.replica_cpus} torch "
        f"thread(s))\n"
    )
    print(
        "| devices in flight | way | dtype | sets/s | p50 (ms) | p99 (ms) | vs forward only "
        "| vs core in-process |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    ceiling = {(r["n"], r["way"], r["dtype"]): r["sets_per_s"] for r in rows}
    for r in rows:
        fwd = r["sets_per_s"] / ceiling[(r["n"], FORWARD, "float32")]
        core = r["sets_per_s"] / ceiling[(r["n"], CORE, r["dtype"])]
        print(
            f"| {r['n']} | {r['way']} | {r['dtype']} | {r['sets_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {fwd:.0%} | {core:.0%} |"
        )
    print("\nServer-side generation time per device (replica, `batch_generate_s / batch_size`):\n")
    for label, ms in server_ms.items():
        print(f"- {label}: {ms:.3f} ms")
    print(
        "\nWhere a columnar round trip goes (medians, ms; the replica time is the same "
        "`generate_batch` measured inside the replica):\n"
    )
    print(
        "| devices | dtype | forward only | core in-process | core in the replica "
        "| Serve round trip | round trip - replica |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for b in breakdown:
        print(
            f"| {b['n']} | {b['dtype']} | {b['forward_ms']:.1f} | {b['core_ms']:.1f} | "
            f"{b['replica_ms']:.1f} | {b['rt_ms']:.1f} | {b['rt_ms'] - b['replica_ms']:.1f} |"
        )
    print(
        "\n`GenerateBatchResponse.split()` into per-device responses (client side, not in the "
        "columnar rows above): " + ", ".join(f"{ms:.1f} ms at {n}" for n, ms in split_ms.items())
    )
    print(
        "\n| backbone (dynamic layers) | params | float32 bytes | float16 bytes | "
        + " | ".join(f"f16 at {k} (ms)" for k in NETWORKS_MBPS)
        + " |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(NETWORKS_MBPS))
    for name, params, b32, b16 in sizes:
        times = " | ".join(f"{1e3 * b16 / (mbps * 1e6):.2f}" for mbps in NETWORKS_MBPS.values())
        print(f"| {name} | {params:,} | {b32:,} | {b16:,} | {times} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replica-cpus", type=int, default=1, help="torch threads = Ray CPUs")
    parser.add_argument(
        "--neck",
        choices=("mean", "gru", "gru-mean"),
        default="mean",
        help="PPG neck over the clicks: mean (the project default) or gru (the paper's)",
    )
    parser.add_argument(
        "--ratio",
        type=int,
        metavar="N",
        help="only the columnar Serve path against the in-process core at N devices, "
        "--repeats times (each its own alternating rounds): every ratio and their median",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--breakdown",
        type=int,
        metavar="N",
        help="where a Serve round trip at N devices goes: the real path beside stand-ins "
        "that ship the answer's bytes through a plain Ray actor and a Serve deployment, "
        "--repeats times, --dtype",
    )
    parser.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32", help="--breakdown's answers"
    )
    return parser.parse_args()


def start_generator(neck: str, replica_cpus: int) -> tuple[GeneratorCore, Any]:
    """The in-process core and a Serve handle to the generator app, both over one fresh
    checkpoint, on a local 2-CPU Ray cluster.

    The core gets the replica's torch thread count, so the in-process ceilings are measured
    with what one replica gets.
    """
    import ray
    from ray import serve

    from actors.service.serve_app import APP_NAME, build_app

    ckpt = make_checkpoint(Path(tempfile.mkdtemp(prefix="bench_generator_")), neck)
    torch.set_num_threads(replica_cpus)  # the ceilings get what one replica gets
    core = GeneratorCore.from_checkpoints({KEY: ckpt})
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 1024**2,
        log_to_driver=False,
    )
    app = build_app(
        {
            "checkpoints": {KEY: str(ckpt)},
            "max_batch_size": MAX_BATCH_SIZE,
            "num_cpus": replica_cpus,
        }
    )
    handle = serve.run(
        app, name=APP_NAME, route_prefix=None, logging_config={"enable_access_log": False}
    )
    return core, handle


async def serve_rows(
    core: GeneratorCore, handle, quick: bool
) -> tuple[list[dict], dict[str, float], list[dict], dict[int, float]]:
    """Every way at every concurrency: the columnar path with its ceilings, then per-device
    calls and lists up to ``PER_DEVICE_MAX`` devices. Returns the rows in the table's order
    (devices, then ways as first measured, float32 first), the replica's time per device,
    the round trips' parts and ``split()``'s time (ms) per concurrency."""
    rows: list[dict] = []
    server_ms: dict[str, float] = {}
    breakdown: list[dict] = []
    split_ms: dict[int, float] = {}
    for n in CONCURRENCY:
        got, split_s = await bench_columnar(
            core, handle, n, rounds_for(n, quick), server_ms, breakdown
        )
        rows.extend(got)
        split_ms[n] = 1e3 * split_s
        if n <= PER_DEVICE_MAX:
            rounds = max(2, rounds_for(n, quick) // 10)
            rows.append(await bench_per_device(handle, n, rounds, server_ms))
            rows.append(await bench_list(handle, n, rounds_for(n, quick)))
    order = {w: i for i, w in enumerate(dict.fromkeys(r["way"] for r in rows))}
    rows.sort(key=lambda r: (r["n"], order[r["way"]], r["dtype"] != "float32"))
    return rows, server_ms, breakdown, split_ms


async def ratio_rows(
    core: GeneratorCore, handle, n: int, repeats: int, quick: bool
) -> dict[str, list[float]]:
    """The columnar Serve path's throughput over the in-process core's at ``n`` devices,
    per dtype, once per repeat (each its own alternating rounds), printed as they come."""
    ratios: dict[str, list[float]] = {"float32": [], "float16": []}
    for _ in range(repeats):
        rounds = rounds_for(n, quick)
        got, _ = await bench_columnar(core, handle, n, rounds, {}, [], forward_too=False)
        speed = {(r["way"], r["dtype"]): r["sets_per_s"] for r in got}
        for dt, values in ratios.items():
            values.append(speed[(SERVE, dt)] / speed[(CORE, dt)])
            print(f"{n} devices, {dt}: Serve at {values[-1]:.0%} of core in-process")
    return ratios


def print_ratios(ratios: dict[str, list[float]]) -> None:
    for dt, values in ratios.items():
        shown = ", ".join(f"{v:.0%}" for v in values)
        print(f"{dt}: median {np.median(values):.0%} of core in-process ({shown})")


T = TypeVar("T")


def run_then_shut_down(job: Coroutine[Any, Any, T]) -> T:
    """Run one benchmark's coroutine, then shut Serve and Ray down even when it fails, so
    that no local cluster outlives the run; the report is printed after."""
    import ray
    from ray import serve

    try:
        return asyncio.run(job)
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    args = parse_args()
    core, handle = start_generator(args.neck, args.replica_cpus)
    if args.breakdown:
        n, rounds = args.breakdown, rounds_for(args.breakdown, args.quick)
        runs = run_then_shut_down(
            bench_breakdown(core, handle, n, rounds, args.repeats, args.dtype)
        )
        print_breakdown(runs, n, args.dtype)
    elif args.ratio is not None:
        ratios = run_then_shut_down(ratio_rows(core, handle, args.ratio, args.repeats, args.quick))
        print_ratios(ratios)
    else:
        results = run_then_shut_down(serve_rows(core, handle, args.quick))
        print_report(*results, download_sizes(), args)


if __name__ == "__main__":
    main()
