"""Fleet scale benchmark: a scenario at one or more device counts on this machine, with the
wall time, simulated sessions per second, peak memory of the whole Ray cluster and memory
per simulated device, plus the per-session fine-tuning vs DUET latency comparison.

Memory is the sum of PSS (proportional set size, /proc/PID/smaps_rollup) over this process
and every descendant -- the local Ray cluster started here: GCS, raylet, Serve controller,
generator replica, fleet actors and idle workers. PSS, not RSS: the object store and shared
libraries are mapped into many processes, and RSS would count them once per process.
Linux only. Preparing the data and training the checkpoints happen once, before the first
measured run and outside it; every size reuses them.

    .venv/bin/python benchmarks/bench_fleet.py [--scenario configs/scenarios/scale-10k.yaml]
        [--out runs/bench-fleet] [--set fleet.devices=2000] [--devices 100 10000] [--num-cpus 2]
    .venv/bin/python benchmarks/bench_fleet.py --scenario configs/scenarios/scale-100k.yaml \
        --devices 1000 10000 30000 100000 --out runs/bench-fleet-100k

Runs the scenario at each ``--devices`` count (default: 100 and the scenario's own): the
peak difference over the device difference is the memory one more simulated device costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

SAMPLE_S = 0.5


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from /proc's parent links."""
    children = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        children[ppid].append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children[pid])
    return out


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ClusterMemory:
    """Samples the PSS sum of this process tree every ``SAMPLE_S`` in a thread; keeps the peak."""

    def __init__(self, root: int):
        self.root, self.peak, self.processes = root, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def now(self) -> int:
        pids = descendants(self.root)
        self.processes = max(self.processes, len(pids))
        return sum(pss_bytes(p) for p in pids)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> ClusterMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", type=Path, default=Path("configs/scenarios/scale-10k.yaml"))
    p.add_argument("--out", type=Path, default=Path("runs/bench-fleet"))
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=None,
        help="device counts to run, smallest first (default: 100 and the scenario's)",
    )
    p.add_argument("--num-cpus", type=int, default=2)
    args = p.parse_args()

    from simulation.scenario_file import load_scenario

    sizes = sorted(
        args.devices or {100, load_scenario(args.scenario, args.overrides).fleet.devices}
    )
    runs = [measure(args, [*args.overrides, f"fleet.devices={n}"], f"devices-{n}") for n in sizes]
    smallest = runs[0]
    for run in runs[1:]:
        extra = run["peak_cluster_pss_gb"] - smallest["peak_cluster_pss_gb"]
        run["pss_per_extra_device_kb"] = extra * 1024**2 / (run["devices"] - smallest["devices"])
    (args.out / "bench.json").write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    print(
        "\n| devices | sessions | run wall (s) | sessions/s | peak cluster PSS (GB) | KB / device |"
    )
    for r in runs:
        per = r.get("pss_per_extra_device_kb")
        print(
            f"| {r['devices']:,} | {r['sessions']:,} | {r['run_wall_s']:.1f} | "
            f"{r['sessions_per_s']:.0f} | {r['peak_cluster_pss_gb']:.2f} | "
            f"{r['pss_per_device_kb']:.0f}" + (f" ({per:.1f} extra)" if per else "") + " |"
        )


def measure(args: argparse.Namespace, overrides: list[str], name: str) -> dict:
    """One run of the scenario into OUT/<name>, sampling the cluster's memory from Ray's
    start to the last row on disk. Data and checkpoints are prepared/trained once, outside
    the measurement, into OUT/cache, and copied in for every run."""
    import os

    from simulation.run import Runner
    from simulation.scenario_file import load_scenario

    scenario = load_scenario(args.scenario, overrides)
    out = args.out / name
    shutil.rmtree(out, ignore_errors=True)
    cache = args.out / "cache"
    out.mkdir(parents=True)
    for part in ("data", "models"):
        if (cache / part).is_dir():
            shutil.copytree(cache / part, out / part)
    runner = Runner(scenario, out, num_cpus=args.num_cpus)
    start = time.perf_counter()
    runner.prepare()
    for part in ("data", "models"):
        if not (cache / part).is_dir():
            shutil.copytree(out / part, cache / part)
    with ClusterMemory(os.getpid()) as memory:
        try:
            runner.start()  # Ray, Serve, fleet actors created
            run_start = time.perf_counter()
            summary = runner.run()
            run_s = time.perf_counter() - run_start
        finally:
            runner.cleanup()
    return _result(scenario, summary, run_s, time.perf_counter() - start, memory)


def _result(scenario, summary, run_s, total_s, memory) -> dict:
    devices = scenario.fleet.devices
    sessions = summary["sessions_simulated"]
    gb = 1024**3
    comparison = summary["latency_comparison"]
    return {
        "scenario": scenario.name,
        "devices": devices,
        "sessions_per_device": scenario.fleet.sessions_per_device,
        "methods": scenario.method_names,
        "sessions": sessions,
        "rows": sum(v["written"] for v in summary["accounting"]["methods"].values()),
        "accounting_complete": summary["accounting"]["complete"],
        "run_wall_s": run_s,
        "total_wall_s": total_s,
        "sessions_per_s": sessions / run_s,
        "peak_cluster_pss_gb": memory.peak / gb,
        "processes": memory.processes,
        "pss_per_device_kb": memory.peak / devices / 1024,
        "auc": {m: v["auc_mean"] for m, v in summary["methods"].items()},
        "latency_s": {m: v["latency_s"] for m, v in summary["methods"].items()},
        "components_mean_s": {m: v["components_mean_s"] for m, v in summary["methods"].items()},
        "latency_comparison": comparison,
    }


if __name__ == "__main__":
    main()
