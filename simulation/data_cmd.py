"""``duet-sim data``: prepare, fetch and export datasets.

Heavy modules (polars stages, torch, PIL) are imported inside the handlers so that
``duet-sim --help`` stays fast. The protocol and image flags are the fields of
`pipelines.sessions.SessionOptions` and `pipelines.names.ImageInput`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from pipelines.argtypes import typed_overrides
from pipelines.datasets import DATASETS
from pipelines.errors import DataError
from pipelines.names import PROTOCOLS, SPLITS, ImageInput
from pipelines.sessions import SessionOptions
from simulation.flags import add_flags, add_plugin_flag, given, one_line

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
    """Turn errors into one line on stderr: a setting out of its bounds exits 2 (like
    argparse's own), bad data exits 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ValidationError as exc:
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except (DataError, ValueError, TypeError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 1

    return run


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="raw dataset -> sessions/train/test Parquet + meta.json")
    p.add_argument("--dataset", required=True, choices=DATASETS.names())
    p.add_argument("--data-dir", default=None, help="raw data root (default: $DUET_DATA_DIR)")
    p.add_argument("--out", required=True, type=Path, help="prepared directory to write")
    p.add_argument("--seed", type=int, default=0, help="negatives, folds, generated data")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default=None,
        help="a named protocol (pipelines/names.py), e.g. paper-ml100k: the authors' "
        "30-core ML-100K; options given after it override it",
    )
    # every protocol and image setting is a field of its config (simulation/flags.py)
    add_flags(p, SessionOptions)
    add_flags(p, ImageInput)
    p.add_argument(
        "--synthetic",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a generated dataset's knob (pipelines/datasets.py), e.g. --synthetic p_stay=0.3",
    )
    add_plugin_flag(p)
    p.set_defaults(func=_guarded(p.prog, _prepare))


def _prepare(args: argparse.Namespace) -> int:
    from pipelines.prepare import default_options, prepare

    preset = PROTOCOLS[args.protocol] if args.protocol else {}
    options = dataclasses.replace(
        default_options(args.dataset),
        **preset.get("options", {}) | given(args, SessionOptions),
    )
    image = ImageInput(**preset.get("image", {}) | given(args, ImageInput))
    knobs = DATASETS[args.dataset].knobs()
    if args.synthetic and knobs is None:
        raise ValueError(f"--synthetic applies to generated datasets, not {args.dataset}")
    defaults = dataclasses.asdict(knobs()) if knobs else {}
    config = knobs(**typed_overrides("--synthetic", defaults, args.synthetic)) if knobs else None
    meta = prepare(
        args.dataset,
        args.out,
        data_dir=args.data_dir,
        options=options,
        seed=args.seed,
        image=image,
        knobs=config,
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
