"""`duet-sim train` and `duet-sim compare`: train one (dataset, backbone, method, seed) cell,
write its metrics and checkpoint; tabulate finished cells side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from duet.backbone import BACKBONES
from pipelines.argtypes import typed_overrides
from simulation.flags import add_flags, add_plugin_flag, given, one_line
from simulation.train_recipe import TrainOptions, TrainRecipe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train and evaluate one method on one dataset")
    # every flag but these is a field of TrainOptions (simulation/flags.py)
    add_flags(p, TrainOptions, skip={"arch"}, flag_names=FLAG_NAMES)
    p.add_argument(
        "--arch",
        action="append",
        default=argparse.SUPPRESS,
        metavar="KEY=VALUE",
        help="clicks: a backbone choice, e.g. --arch target_tower=true "
        "(duet.builders.ARCH_DEFAULTS); any --arch replaces duet/tuned.py's set, "
        "--arch reference keeps every reference default",
    )
    p.add_argument(
        "--out", required=True, type=Path, help="run directory (metrics.json, checkpoint)"
    )
    p.add_argument(
        "--no-test",
        dest="test",
        action="store_false",
        help="train and validate only: the test split is not read (tuning runs)",
    )
    add_plugin_flag(p)
    p.set_defaults(func=run_train)

    d = subparsers.add_parser(
        "demo", help="train base and DUET on the embedded synthetic data and compare"
    )
    d.add_argument("--out", type=Path, default=Path("runs/demo"))
    clicks = [name for name, cls in BACKBONES.items() if cls.kind == "clicks"]
    d.add_argument("--backbone", default="din", choices=clicks)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_demo)

    c = subparsers.add_parser("compare", help="print finished runs' metrics side by side")
    c.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.json")
    c.set_defaults(func=run_compare)


FLAG_NAMES = {"num_generators": "--np"}  # fields whose flag is not their name


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The recipe's options from parsed flags (every flag's dest is an option's name)."""
    options = given(args, TrainOptions)
    if "arch" in options:
        from duet.builders import ARCH_DEFAULTS

        pairs = [a for a in options["arch"] if a != "reference"]  # `reference`: no override
        options["arch"] = tuple(typed_overrides("--arch", ARCH_DEFAULTS, pairs).items())
    return TrainOptions(**options)


def run_train(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as exc:  # out of bounds, or a combination (image backbone on clicks)
        flag_of = lambda name: FLAG_NAMES.get(name, "--" + name.replace("_", "-"))  # noqa: E731
        print(f"duet-sim train: error: {one_line(exc, flag_of)}", file=sys.stderr)
        return 2
    metrics = TrainRecipe(options, args.out).run(test=args.test)
    print(_format_table([metrics]))
    return 0


COLUMNS = (
    "method",
    "backbone",
    "seed",
    "auc",
    "session_auc",
    "user_auc",
    "ndcg@10",
    "hr@10",
    "logloss",
    "accuracy",
    "latency_ms",
    "params",
)


def _format_table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    table = [cols] + [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in table
    )


def run_demo(args: argparse.Namespace) -> int:
    """`duet-sim demo` (docs/methods.md): one shared prepared dataset, three methods, one table."""
    from pipelines.prepare import prepare

    data = args.out / "data"
    prepare("synthetic-clicks", data, seed=0)
    runs = []
    for method in ("base", "duet-no-swa", "duet"):
        run = args.out / method
        print(f"== {method} ({args.backbone}) -> {run}")
        options = TrainOptions(
            "synthetic-clicks", args.backbone, method, seed=args.seed, prepared=data
        )
        TrainRecipe(options, run).run()
        runs.append(run)
    print("\n== comparison on the synthetic-clicks test split")
    return run_compare(argparse.Namespace(runs=runs))


def run_compare(args: argparse.Namespace) -> int:
    rows = []
    for run in args.runs:
        path = run / "metrics.json"
        if not path.is_file():
            raise SystemExit(
                f"duet-sim compare: error: {path} not found (did `duet-sim train` finish?)"
            )
        rows.append(json.loads(path.read_text()))
    print(_format_table(rows))
    return 0
