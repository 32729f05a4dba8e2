"""``duet-sim data``: prepare, fetch and export datasets.

Heavy modules (polars stages, torch, PIL) are imported inside the handlers so that
``duet-sim --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.argtypes import int_in_range, typed_overrides
from pipelines.errors import DataError
from pipelines.names import DATASET_NAMES, IMAGE_CHANNELS, IMAGE_SIZES, PROTOCOLS, SPLITS

FETCH_NAMES = (
    "movielens-100k",
    "movielens-1m",
    "movielens-10m",
    "movielens-20m",
    "movielens-25m",
    "movielens-latest",
    "movielens-latest-small",
    "ckplus",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its sub-commands; each sets ``func(args) -> int``."""
    data = subparsers.add_parser("data", help="prepare, fetch and export datasets")
    sub = data.add_subparsers(dest="data_command", required=True)
    _add_prepare(sub)
    _add_fetch(sub)
    _add_export(sub)


def _guarded(prog: str, handler: Callable[[argparse.Namespace], int]) -> Callable:
    """Turn data/argument errors into one line on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (DataError, ValueError, TypeError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 1

    return run


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="raw dataset -> sessions/train/test Parquet + meta.json")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    p.add_argument("--data-dir", default=None, help="raw data root (default: $DUET_DATA_DIR)")
    p.add_argument("--out", required=True, type=Path, help="prepared directory to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default=None,
        help="a named protocol (pipelines/names.py), e.g. paper-ml100k: the authors' "
        "30-core ML-100K; options given after it override it",
    )
    p.add_argument("--session-length", type=int, default=None, help="clicks per session (10)")
    p.add_argument(
        "--session-gap-s",
        type=int,
        default=None,
        help="cut sessions at this inactivity gap instead of by length",
    )
    p.add_argument(
        "--test-sessions", type=int, default=None, help="each user's last N sessions (1)"
    )
    p.add_argument(
        "--val-sessions",
        type=int_in_range(0),
        default=None,
        help="the N sessions before a user's test sessions: validation (0: none)",
    )
    p.add_argument(
        "--history-length",
        type=int,
        default=None,
        help="clicks of history per sample (default: 30; synthetic-clicks 10)",
    )
    p.add_argument(
        "--realtime-size",
        type=int,
        default=None,
        help="R real-time clicks (default: 10; synthetic-clicks 30)",
    )
    p.add_argument("--train-negatives", type=int, default=None, help="(4)")
    p.add_argument("--test-negatives", type=int, default=None, help="(100)")
    p.add_argument("--k-core", type=int, default=None, help="(0: no k-core filter)")
    p.add_argument(
        "--folds",
        type=int_in_range(0),
        default=None,
        help="image datasets: split by subject into N cross-validation folds (0: by time)",
    )
    p.add_argument(
        "--fold",
        type=int_in_range(0),
        default=None,
        help="with --folds: the fold whose subjects are the test split (the next: validation)",
    )
    p.add_argument(
        "--image-size",
        type=int_in_range(IMAGE_SIZES.start, IMAGE_SIZES.stop - 1),
        default=None,
        help="square side of CK+ frames (48; paper: 224)",
    )
    p.add_argument(
        "--image-channels",
        type=int,
        choices=IMAGE_CHANNELS,
        default=None,
        help="3 repeats the gray plane: the paper's 224x224x3 input",
    )
    p.add_argument(
        "--synthetic",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a synthetic dataset knob, e.g. --synthetic p_stay=0.3",
    )
    p.set_defaults(func=_guarded(p.prog, _prepare))


def synthetic_overrides(config_cls: type, pairs: list[str]):
    """Build ``config_cls`` from ``KEY=VALUE`` strings, typed by the default's type."""
    defaults = dataclasses.asdict(config_cls())
    return config_cls(**typed_overrides("--synthetic", defaults, pairs))


def _prepare(args: argparse.Namespace) -> int:
    from pipelines.prepare import default_options, prepare
    from pipelines.synthetic import SyntheticClicksConfig, SyntheticVideoConfig

    preset = PROTOCOLS[args.protocol] if args.protocol else {}
    given = {
        k: getattr(args, k)
        for k in (
            "session_length",
            "session_gap_s",
            "test_sessions",
            "val_sessions",
            "history_length",
            "realtime_size",
            "train_negatives",
            "test_negatives",
            "k_core",
            "folds",
            "fold",
        )
        if getattr(args, k) is not None
    }
    options = dataclasses.replace(
        default_options(args.dataset), **preset.get("options", {}) | given
    )
    image = {"image_size": 48, "image_channels": 1} | preset.get("image", {})
    image |= {k: getattr(args, k) for k in image if getattr(args, k) is not None}
    configs = {}
    if args.dataset == "synthetic-clicks":
        configs["clicks_config"] = synthetic_overrides(SyntheticClicksConfig, args.synthetic)
    elif args.dataset == "synthetic-video":
        configs["video_config"] = synthetic_overrides(SyntheticVideoConfig, args.synthetic)
    elif args.synthetic:
        raise ValueError(f"--synthetic applies to synthetic datasets, not {args.dataset}")
    meta = prepare(
        args.dataset,
        args.out,
        data_dir=args.data_dir,
        options=options,
        seed=args.seed,
        **image,
        **configs,
    )
    counts = ", ".join(f"{k}={v}" for k, v in meta["counts"].items())
    print(f"prepared {args.dataset} -> {args.out} ({counts})")
    return 0


def _add_fetch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch", help="download and verify an official dataset archive")
    p.add_argument("dataset", choices=FETCH_NAMES)
    p.add_argument(
        "--dest", type=Path, default=None, help="data root (default: $DUET_DATA_DIR, else ./data)"
    )
    p.add_argument(
        "--base-url", default=None, help="mirror of files.grouplens.org/datasets/movielens"
    )
    p.add_argument("--checksum", default=None, help="md5:<hex> or sha256:<hex> override")
    p.set_defaults(func=_guarded(p.prog, _fetch))


def _fetch(args: argparse.Namespace) -> int:
    from pipelines.fetch import BASE_URL, CKPLUS_LICENSE, fetch

    if args.dataset == "ckplus":
        print(CKPLUS_LICENSE, file=sys.stderr)
        return 2
    dest = args.dest or Path(os.environ.get("DUET_DATA_DIR") or "data")
    path = fetch(args.dataset, dest, base_url=args.base_url or BASE_URL, checksum=args.checksum)
    print(f"{args.dataset} ready in {path}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-duet", help="prepared clicks -> DUET reference text format")
    p.add_argument("--prepared", required=True, type=Path, help="a prepared directory")
    p.add_argument("--dest", required=True, type=Path, help="folder for <split>.txt")
    p.add_argument("--split", nargs="+", default=list(SPLITS), choices=SPLITS)
    p.set_defaults(func=_guarded(p.prog, _export))


def _export(args: argparse.Namespace) -> int:
    from pipelines.export import export_duet

    for path in export_duet(args.prepared, args.dest, tuple(args.split)):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.cli data ...``: the ``data`` commands without the rest of duet-sim.

    Used by the benchmark's child processes and by tests, so they do not depend on other
    sub-commands importing cleanly.
    """
    from simulation.cli import OneLineErrorParser

    parser = OneLineErrorParser(prog="duet-sim")
    subparsers = parser.add_subparsers(
        dest="command", required=True, parser_class=OneLineErrorParser
    )
    register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
