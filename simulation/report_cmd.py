"""`duet-sim report RUN_DIR`: write RUN_DIR/report.md and its plots (simulation/report.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write report.md with plots for a finished run")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="directory of a simulation run")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    try:
        from simulation.report import write_report
    except ImportError as e:
        raise SystemExit(f"duet-sim report: error: {e}; pip install 'duet-sim[report]'") from e
    try:
        print(write_report(args.run_dir))
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"duet-sim report: error: {e}") from e
    return 0
