"""`duet-sim run SCENARIO.yaml` and `duet-sim validate SCENARIO.yaml`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from simulation.flags import add_plugin_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    r = subparsers.add_parser("run", help="simulate a device fleet as a scenario file describes")
    r.add_argument("scenario", type=Path, help="scenario YAML (configs/scenarios/)")
    r.add_argument(
        "--out", default=None, help="output directory or s3:// URI (default: output.dir)"
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out, skipping sessions already written",
    )
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.SUB=VALUE",
        help="override a scenario field, e.g. --set fleet.devices=100",
    )
    r.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)",
    )
    r.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's and Serve's own logs here instead of in OUT/ray.log",
    )
    add_plugin_flag(r)
    r.set_defaults(func=run_scenario)

    v = subparsers.add_parser("validate", help="check a scenario file without running it")
    v.add_argument("scenario", type=Path)
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.SUB=VALUE")
    add_plugin_flag(v)
    v.set_defaults(func=validate_scenario)


def _load(args: argparse.Namespace, prog: str):
    from simulation import api
    from simulation.scenario_file import ScenarioError

    try:
        return api.load(args.scenario, args.overrides, args.plugins)
    except ScenarioError as exc:
        print(f"duet-sim {prog}: error:", *exc.problems, sep="\n  ", file=sys.stderr)
        raise SystemExit(2) from None


def validate_scenario(args: argparse.Namespace) -> int:
    scenario = _load(args, "validate")
    print(
        f"{args.scenario}: ok ({scenario.fleet.devices} devices x "
        f"{scenario.fleet.sessions_per_device} sessions, "
        f"methods {', '.join(scenario.method_names)})"
    )
    return 0


def run_scenario(args: argparse.Namespace) -> int:
    """`simulation.api.run`, with its errors as one line and an exit code (docs/scenarios.md):
    2 when the output cannot take the run, 1 when it fails or rows are missing."""
    from actors.storage.uris import join
    from pipelines.errors import DataError
    from simulation import api
    from simulation.errors import OutputError, RunError

    scenario = _load(args, "run")
    try:
        result = api.run(
            scenario,
            args.out,
            resume=args.resume,
            address=args.address,
            num_cpus=args.num_cpus,
            progress=not args.no_progress,
            verbose=args.verbose,
        )
    except (RunError, DataError) as exc:
        print(f"duet-sim run: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, OutputError) else 1
    print(format_summary(result.raw))
    print(f"rows: {join(result.out, 'sessions')}  summary: {join(result.out, 'summary.json')}")
    return 0 if result.summary.accounting.complete else 1


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run table: per method AUC (accuracy for videos) and latency, gains over base,
    shift phases."""
    metric = summary["metric"]

    def f(x: float | None) -> str:
        return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"

    lines = [
        f"{summary['scenario']}: {summary['sessions_simulated']} sessions in "
        f"{summary['wall_s']:.1f} s ({summary['sessions_per_s']:.1f} sessions/s)",
        "",
        f"{'method':<12} {'sessions':>8} {metric[:8]:>8} {'± std':>7} {'gain':>8} {'95% CI':>19} "
        f"{'p50 s':>8} {'p95 s':>8} {'fallback':>8}",
    ]
    for method, m in summary["methods"].items():
        g = summary["gains"].get(method)
        gain = f"{g['mean']:+.4f}" if g else ""
        ci = f"[{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]" if g else ""
        lines.append(
            f"{method:<12} {m['sessions']:>8} {f(m[metric + '_mean']):>8} "
            f"{f(m[metric + '_std']):>7} "
            f"{gain:>8} {ci:>19} {m['latency_s']['p50']:>8.4f} {m['latency_s']['p95']:>8.4f} "
            f"{m['fallback']:>8}"
        )
    for shift in summary["shifts"]:
        lines += [
            "",
            f"shift {shift['operator']} at session {shift['at_session']} "
            f"({shift['devices']} devices): mean {metric}, shifted group / control",
        ]
        for phase, part in shift["shifted"].items():
            control = shift["control"][phase][metric]
            cells = "  ".join(f"{m} {f(v)} / {f(control.get(m))}" for m, v in part[metric].items())
            lines.append(f"  {phase:<7} {cells}")
    return "\n".join(lines)
