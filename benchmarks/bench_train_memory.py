"""Training throughput and peak memory per backbone and method: each cell is one
`duet-sim train` process on the prepared ML-100K (2 epochs, Table 1's), run alone, one
thread; its peak RSS comes from the kernel (``getrusage`` of the finished child, which
covers everything the run loaded: data, model, evaluation) and its samples/s from its
metrics.json (training steps only).

Usage:
    .venv/bin/python benchmarks/bench_train_memory.py \\
        [--prepared runs/paper/data/movielens-100k] [--backbones sasrec gru4rec din]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cell(prepared: Path, backbone: str, method: str, epochs: int) -> dict[str, float]:
    """One training run in a child process: its samples/s, seconds and peak RSS (GB)."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "simulation.cli",
            "train",
            "--dataset",
            "movielens-100k",
            "--backbone",
            backbone,
            "--method",
            method,
            "--prepared",
            str(prepared),
            "--epochs",
            str(epochs),
            "--out",
            out,
            "--no-progress",
        ]
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # its only child
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return {
        "samples_per_s": metrics["train_samples_per_s"],
        "train_s": metrics["train_seconds"],
        "peak_gb": peak_kb / 1024**2,
        "auc": metrics["auc"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prepared", type=Path, default=ROOT / "runs/paper/data/movielens-100k")
    p.add_argument("--backbones", nargs="+", default=["sasrec", "gru4rec", "din"])
    p.add_argument("--methods", nargs="+", default=["base", "duet"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cell", nargs=2, metavar=("BACKBONE", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:  # one cell per process: RUSAGE_CHILDREN keeps the maximum over children
        print(json.dumps(run_cell(args.prepared, *args.cell, args.epochs)))
        return
    print("| backbone | method | samples/s (training) | train s | peak RSS (GB) | test AUC |")
    print("|---|---|---:|---:|---:|---:|")
    for backbone in args.backbones:
        for method in args.methods:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_train_memory",  # this file, importing the checkout's code
                    "--prepared",
                    str(args.prepared),
                    "--epochs",
                    str(args.epochs),
                    "--cell",
                    backbone,
                    method,
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
            r = json.loads(out.splitlines()[-1])
            print(
                f"| {backbone} | {method} | {r['samples_per_s']:,.0f} | {r['train_s']:.0f} "
                f"| {r['peak_gb']:.2f} | {r['auc']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
