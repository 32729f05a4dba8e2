"""`duet-sim train` and `duet-sim compare`: train one (dataset, backbone, method, seed) cell,
write its metrics and checkpoint; tabulate finished cells side by side."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from duet.names import (
    BACKBONE_NAMES,
    CONDITIONS,
    DEFAULT_CONDITION,
    LR_SCHEDULES,
    METHODS,
    NECKS,
    SELECTIONS,
    SEQUENCE_BACKBONE_NAMES,
)
from pipelines.argtypes import finite_float, int_in_range, typed_overrides
from pipelines.names import DATASET_NAMES
from simulation.train_recipe import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    TrainOptions,
    TrainRecipe,
)

positive_int = int_in_range(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train and evaluate one method on one dataset")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--backbone", required=True, choices=BACKBONE_NAMES)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--seed", type=int, default=0, help="model initialisation and batch order")
    p.add_argument(
        "--out", required=True, type=Path, help="run directory (metrics.json, checkpoint)"
    )
    p.add_argument(
        "--data-dir", type=Path, default=None, help="raw datasets (default $DUET_DATA_DIR)"
    )
    p.add_argument("--prepared", type=Path, default=None, help="reuse a `data prepare` output")
    p.add_argument("--data-seed", type=int, default=0, help="negative sampling / synthetic data")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="most epochs trained; the best on validation is kept "
        f"(default: {DEFAULT_EPOCHS['clicks']} clicks, {DEFAULT_EPOCHS['images']} images)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"default: {DEFAULT_BATCH_SIZE['clicks']} clicks, "
        f"{DEFAULT_BATCH_SIZE['images']} images",
    )
    p.add_argument("--lr", type=finite_float(0.0, inclusive=False), default=1e-3)
    p.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="constant (the paper's Adam rate) or cosine decay to 0",
    )
    p.add_argument(
        "--weight-decay",
        type=finite_float(0.0),
        default=None,
        help="Adam's L2 term (default: 0 clicks, 5e-4 images, paper Table 5)",
    )
    p.add_argument(
        "--np", dest="num_generators", type=positive_int, default=5, help="N_p SWA generators"
    )
    p.add_argument("--tau", type=float, default=1.0, help="SWA temperature")
    p.add_argument(
        "--neck",
        choices=NECKS,
        default=None,
        help="PPG neck (default: chosen on validation per backbone and conditioning, "
        "duet/tuned.py; the paper's is gru)",
    )
    p.add_argument(
        "--condition",
        choices=CONDITIONS,
        default=DEFAULT_CONDITION,
        help="what the PPG reads: the session's real-time clicks (the paper's text) "
        "or each impression's own history (the authors' code)",
    )
    p.add_argument("--gamma", type=float, default=1.0, help="session weight γ of Eq. 7")
    p.add_argument(
        "--finetune-steps",
        type=int_in_range(0),
        default=10,
        help="finetune: Adam steps per session on its real-time samples (0: base)",
    )
    p.add_argument("--finetune-lr", type=float, default=1e-2, help="finetune: Adam learning rate")
    p.add_argument(
        "--global-loss-weight",
        type=finite_float(0.0),
        default=None,
        help="generated methods: weight of the global classifier's loss (theirs: 0; "
        "default: duet/tuned.py)",
    )
    p.add_argument(
        "--arch",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="clicks: a backbone choice, e.g. --arch target_tower=true "
        "(duet.builders.ARCH_DEFAULTS); any --arch replaces duet/tuned.py's set, "
        "--arch reference keeps every reference default",
    )
    p.add_argument(
        "--full-ranking",
        action="store_true",
        help="clicks: also rank each test target among every unseen item "
        "(full_hr@k, full_ndcg@k; minutes for DIN)",
    )
    p.add_argument(
        "--no-test",
        dest="test",
        action="store_false",
        help="train and validate only: the test split is not read (tuning runs)",
    )
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="images: train without random flips and shifts",
    )
    p.add_argument(
        "--select",
        choices=SELECTIONS,
        default="best",
        help="the epoch kept: best on the validation split (default), or the last",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream the train split through Ray Data instead of loading it "
        "(train splits larger than memory; starts a local Ray)",
    )
    p.add_argument(
        "--users",
        type=int,
        default=None,
        help="train, select and test on the first N users only (a sample of a large population)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run_train)

    d = subparsers.add_parser(
        "demo", help="train base and DUET on the embedded synthetic data and compare"
    )
    d.add_argument("--out", type=Path, default=Path("runs/demo"))
    d.add_argument("--backbone", default="din", choices=SEQUENCE_BACKBONE_NAMES)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_demo)

    c = subparsers.add_parser("compare", help="print finished runs' metrics side by side")
    c.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.json")
    c.set_defaults(func=run_compare)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The recipe's options from parsed flags (every flag's dest is an option's name)."""
    names = {f.name for f in dataclasses.fields(TrainOptions)}
    options = {k: v for k, v in vars(args).items() if k in names}
    if args.arch is not None:
        from duet.builders import ARCH_DEFAULTS

        pairs = [a for a in args.arch if a != "reference"]  # `reference`: no override at all
        options["arch"] = tuple(typed_overrides("--arch", ARCH_DEFAULTS, pairs).items())
    return TrainOptions(**options)


def run_train(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
    except ValueError as exc:  # a combination argparse cannot see (image backbone on clicks)
        print(f"duet-sim train: error: {exc}", file=sys.stderr)
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
