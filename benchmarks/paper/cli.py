"""Reproduce the paper's Tables 1-4 and Figure 4, resumably, on a small CPU machine.

Every training cell (dataset, backbone, method, seed[, N_p]) is one run of
``simulation.train_recipe.TrainRecipe``, the recipe `duet-sim train` calls, on a dataset
prepared once per (dataset, protocol) and shared by all cells (``--prepared``). A finished
cell's ``metrics.json`` is copied to
``benchmarks/paper_results/<table>/<dataset>[-<protocol>]/<cell>.json``,
which is small and committed, so progress survives between sessions: rerunning the same
command skips cached cells. Checkpoints stay under ``runs/paper/`` (git-ignored).

    .venv/bin/python -m benchmarks.paper table1 [--dataset movielens-1m --data-dir DIR]
    .venv/bin/python -m benchmarks.paper table2            # CK+ 112x3, with the N_p sweep (Table 4)
    .venv/bin/python -m benchmarks.paper table3            # sizes and delays (no training)
    .venv/bin/python -m benchmarks.paper parity            # our vs the authors' choices, on val
    .venv/bin/python -m benchmarks.paper linear-floor      # Table 2's ridge on raw pixels
    .venv/bin/python -m benchmarks.paper probes            # protocol choices, on validation
    .venv/bin/python -m benchmarks.paper folds             # Tables 2 and 4, cross-validated
    .venv/bin/python -m benchmarks.paper fleet NAME        # a fleet run: Figure 4, conditioning
    .venv/bin/python -m benchmarks.paper write             # docs/results.md from the cached cells
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.paper.cells import FOLDS, RESULTS, RUNS
from benchmarks.paper.fleet_runs import FLEET_RUNS, run_fleet
from benchmarks.paper.floor import linear_floor
from benchmarks.paper.folds import run_folds
from benchmarks.paper.grids import (
    CLICK_BACKBONES,
    CLICK_METHODS,
    CLICK_PROTOCOLS,
    EPOCHS,
    IMAGE_BACKBONES,
    IMAGE_METHODS,
    IMAGE_PROTOCOLS,
    NP_SWEEP,
    SEEDS,
    TABLE2_NP,
    TABLE2_PROTOCOL,
    prepared,
    run_cells,
    table_cells,
)
from benchmarks.paper.parity import PARITY_ARCH, PARITY_DUET, run_parity
from benchmarks.paper.probes import PROBE_DATA, run_probes
from benchmarks.paper.render import DOC, write_doc
from benchmarks.paper.table3 import write_table3


def cmd_train_table(args: argparse.Namespace) -> None:
    data = prepared(args.dataset, args.data_dir, args.runs, args.protocol)
    cells = table_cells(
        args.table, args.dataset, args.backbones, args.methods, args.seeds, args.n_p, args.protocol
    )
    run_cells(cells, args.epochs, data, args.results, args.runs)


def cmd_parity(args: argparse.Namespace) -> None:
    run_parity(
        args.dataset,
        args.protocol,
        args.seeds,
        args.backbones,
        args.archs,
        args.duets,
        args.data_dir,
        args.results,
        args.runs,
    )


def cmd_probes(args: argparse.Namespace) -> None:
    run_probes(args.tables, args.data_dir, args.results, args.runs)


def cmd_folds(args: argparse.Namespace) -> None:
    run_folds(
        args.folds,
        args.backbones,
        args.methods,
        args.n_p,
        args.protocol,
        args.ridge,
        args.data_dir,
        args.results,
        args.runs,
    )


def cmd_linear_floor(args: argparse.Namespace) -> None:
    linear_floor(args.protocols, args.data_dir, args.results, args.runs)


def cmd_table3(args: argparse.Namespace) -> None:
    write_table3(args.dataset, args.data_dir, args.results, args.runs)


def cmd_fleet(args: argparse.Namespace) -> None:
    run_fleet(args.run, args.data_dir, args.results, args.runs)


def cmd_write(args: argparse.Namespace) -> None:
    write_doc(args.out, args.results, args.dataset, args.seeds)


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="raw data (default $DUET_DATA_DIR)"
    )


def _add_tables(sub: argparse._SubParsersAction) -> None:
    """``table1`` and ``table2``: one parser each, the same flags with each table's grid."""
    for table, dataset, backbones, methods in (
        ("table1", "movielens-100k", CLICK_BACKBONES, CLICK_METHODS),
        ("table2", "ckplus", IMAGE_BACKBONES, IMAGE_METHODS),
    ):
        t = sub.add_parser(table, help=f"train the {table} grid (cached cells are skipped)")
        t.add_argument("--dataset", default=dataset, help="table1: movielens-1m with --data-dir")
        _data_dir(t)
        t.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
        t.add_argument("--epochs", type=int, default=EPOCHS[table], help=f"default {EPOCHS[table]}")
        t.add_argument("--backbones", nargs="+", default=list(backbones), choices=backbones)
        t.add_argument("--methods", nargs="+", default=list(methods), choices=methods)
        t.add_argument(
            "--n-p",
            type=int,
            nargs="+",
            default=list(NP_SWEEP),
            choices=NP_SWEEP,
            help="table2: which N_p of the DUET sweep to train",
        )
        image = table == "table2"
        t.add_argument(
            "--protocol",
            default=TABLE2_PROTOCOL if image else "",
            choices=IMAGE_PROTOCOLS if image else ("", "paper-ml100k"),
            help=f"table2: the CK+ input (default: the 5-seed grid's, {TABLE2_PROTOCOL}); "
            "table1: paper-ml100k for the authors' 30-core data",
        )
        t.set_defaults(func=cmd_train_table, table=table)


def _add_validation_runs(sub: argparse._SubParsersAction) -> None:
    """``parity`` and ``probes``: the cells that choose settings, on validation only."""
    pa = sub.add_parser("parity", help="our vs the authors' choices, on the validation split")
    pa.add_argument("--dataset", default="movielens-100k")
    _data_dir(pa)
    pa.add_argument("--protocol", default="", choices=["", *CLICK_PROTOCOLS])
    pa.add_argument("--seeds", type=int, nargs="+", default=[0])
    pa.add_argument("--backbones", nargs="+", default=["sasrec"], choices=CLICK_BACKBONES)
    pa.add_argument("--archs", nargs="+", default=list(PARITY_ARCH), choices=list(PARITY_ARCH))
    pa.add_argument(
        "--duets",
        nargs="*",
        default=list(PARITY_DUET),
        choices=list(PARITY_DUET),
        help="generator variants on each architecture (none: base cells only)",
    )
    pa.set_defaults(func=cmd_parity)
    pr = sub.add_parser("probes", help="protocol choices questioned, on validation only")
    _data_dir(pr)
    pr.add_argument("--tables", nargs="+", default=list(PROBE_DATA), choices=list(PROBE_DATA))
    pr.set_defaults(func=cmd_probes)


def _add_ckplus_runs(sub: argparse._SubParsersAction) -> None:
    """``folds`` and ``linear-floor``: Table 2 cross-validated, and its ridge floor."""
    fo = sub.add_parser(
        "folds", help=f"Tables 2 and 4 as subject-independent {FOLDS}-fold cross-validation"
    )
    _data_dir(fo)
    fo.add_argument("--protocol", default=TABLE2_PROTOCOL, choices=IMAGE_PROTOCOLS)
    fo.add_argument("--folds", type=int, nargs="+", default=list(range(FOLDS)))
    fo.add_argument(
        "--backbones", nargs="+", default=list(IMAGE_BACKBONES), choices=IMAGE_BACKBONES
    )
    fo.add_argument("--methods", nargs="+", default=list(IMAGE_METHODS), choices=IMAGE_METHODS)
    fo.add_argument("--n-p", type=int, nargs="+", default=[TABLE2_NP], choices=NP_SWEEP)
    fo.add_argument("--ridge", action="store_true", help="also the ridge floor of each fold")
    fo.set_defaults(func=cmd_folds)
    lf = sub.add_parser("linear-floor", help="Table 2's ridge regression on raw pixels")
    _data_dir(lf)
    lf.add_argument(
        "--protocols", nargs="+", default=list(IMAGE_PROTOCOLS), choices=IMAGE_PROTOCOLS
    )
    lf.set_defaults(func=cmd_linear_floor)


def _add_outputs(sub: argparse._SubParsersAction) -> None:
    """``table3``, ``fleet`` and ``write``: what is computed without a training grid."""
    t3 = sub.add_parser("table3", help="upload/download sizes and delays")
    t3.add_argument("--dataset", default="movielens-100k", help="Table 1's dataset")
    _data_dir(t3)
    t3.set_defaults(func=cmd_table3)
    fl = sub.add_parser(
        "fleet",
        help="a fleet run: Figure 4 (per-session quality across a "
        "shift) or the conditioning comparison",
    )
    fl.add_argument("run", choices=list(FLEET_RUNS))
    _data_dir(fl)
    fl.set_defaults(func=cmd_fleet)
    w = sub.add_parser("write", help="render docs/results.md from the cached cells")
    w.add_argument("--dataset", default="movielens-100k", help="Table 1's dataset")
    w.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    w.add_argument("--out", type=Path, default=DOC)
    w.set_defaults(func=cmd_write)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.paper",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="cached cell JSONs (committed)")
    p.add_argument("--runs", type=Path, default=RUNS, help="run dirs and prepared data (ignored)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_tables(sub)
    _add_validation_runs(sub)
    _add_ckplus_runs(sub)
    _add_outputs(sub)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    # the machine is shared; one thread per process avoids oversubscription
    torch.set_num_threads(1)
    args = parse_args(argv)
    args.func(args)
    return 0
