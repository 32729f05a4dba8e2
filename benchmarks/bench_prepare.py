"""Benchmark ``duet-sim data prepare``: wall time and peak memory on ML-100K and a ≥1M stream.

Each case runs in a fresh child process (``python -m simulation.cli data prepare ...``) so its
peak RSS (``wait4`` rusage ``ru_maxrss``) is its own. Results replace the ``## data prepare``
section of ``benchmarks/RESULTS.md``.

Usage:
    DUET_DATA_DIR=DIR .venv/bin/python benchmarks/bench_prepare.py
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
HEADING = "## data prepare"
# 5,000 users x 20 sessions x 10 clicks = 1,000,000 interactions.
LARGE = ["n_users=5000", "n_items=5000", "n_clusters=50", "sessions_per_user=20"]
TARGET_S, TARGET_GB = 60.0, 4.0


def run_case(name: str, args: list[str], out: Path) -> dict:
    """Run one prepare in a child; returns wall seconds, peak RSS and the prepared counts."""
    cmd = [sys.executable, "-m", "simulation.cli", "data", "prepare", *args, "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed: {stderr}")
    meta = json.loads((out / "meta.json").read_text())
    return {
        "case": name,
        "wall_s": wall_s,
        "peak_rss_gb": usage.ru_maxrss / 1024**2,
        "interactions": meta["counts"]["interactions"],
        "train_rows": meta["counts"]["train_rows"],
        "test_rows": meta["counts"]["test_rows"],
        "command": "duet-sim data prepare " + shlex.join(args),
    }


def cases() -> list[tuple[str, list[str]]]:
    found = []
    data_dir = os.environ.get("DUET_DATA_DIR")
    if data_dir and (Path(data_dir) / "ml-100k").is_dir():
        found.append(("movielens-100k", ["--dataset", "movielens-100k", "--data-dir", data_dir]))
    else:
        print("DUET_DATA_DIR/ml-100k not found: skipping the ML-100K case", file=sys.stderr)
    large = ["--dataset", "synthetic-clicks"] + [a for kv in LARGE for a in ("--synthetic", kv)]
    found.append(("synthetic-clicks 1M", large))
    return found


def write_results(rows: list[dict]) -> None:
    """Replace (or append) the ``## data prepare`` section of RESULTS.md."""
    lines = [
        HEADING,
        "",
        f"Recorded {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"by `DUET_DATA_DIR=DIR .venv/bin/python benchmarks/bench_prepare.py`. "
        f"Target: 1M interactions in < {TARGET_S:.0f} s and < {TARGET_GB:.0f} GB.",
        "",
        "| case | interactions | train rows | test rows | wall (s) | peak RSS (GB) | command |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['interactions']:,} | {r['train_rows']:,} | "
            f"{r['test_rows']:,} | {r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} | "
            f"`{r['command']} --out OUT` |"
        )
    section = "\n".join(lines) + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING in text:
        head, _, rest = text.partition(HEADING)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, args) in enumerate(cases()):
            row = run_case(name, args, Path(tmp) / f"case{i}")
            print(f"{name}: {row['wall_s']:.1f} s, {row['peak_rss_gb']:.2f} GB peak RSS")
            rows.append(row)
    write_results(rows)
    big = rows[-1]
    ok = big["wall_s"] < TARGET_S and big["peak_rss_gb"] < TARGET_GB
    print(f"1M target ({TARGET_S:.0f} s, {TARGET_GB:.0f} GB): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
