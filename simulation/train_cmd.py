"""`duet-sim train` and `duet-sim compare`: train one (dataset, backbone, method, seed) cell,
write its metrics and checkpoint; tabulate finished cells side by side."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DATASETS = (
    "synthetic-clicks", "synthetic-video", "movielens-100k", "movielens-1m", "movielens-10m",
    "movielens-20m", "movielens-25m", "movielens-latest", "ckplus",
)  # fmt: skip
BACKBONES = ("sasrec", "gru4rec", "din", "mobilenet_v3_large", "mobilenet_v3_small")
METHODS = ("base", "finetune", "duet", "duet-no-swa", "hypernet")
NECKS = ("mean", "gru", "gru-mean")  # duet.ppg.NECKS, without importing torch for --help
# defaults chosen so a cell trains in about a minute on a 2-core CPU (recorded in the README)
DEFAULT_EPOCHS = {"clicks": 5, "images": 15}
# CK+48 has 690 training frames: at 256 a 15-epoch run is 45 optimizer steps, too few to fit
# the augmented frames (test accuracy 0.41 against 0.56 at 32; docs/results.md).
DEFAULT_BATCH_SIZE = {"clicks": 256, "images": 32}


def int_at_least(minimum: int):
    """argparse type for counts: refuses values below ``minimum`` at parse time, before any
    data is prepared, with the option's name in the message."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train and evaluate one method on one dataset")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--backbone", required=True, choices=BACKBONES)
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
    p.add_argument("--epochs", type=positive_int, default=None, help="default: 5 clicks, 15 images")
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="default: 256 clicks, 32 images"
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--np", dest="num_generators", type=positive_int, default=5, help="N_p SWA generators"
    )
    p.add_argument("--tau", type=float, default=1.0, help="SWA temperature")
    p.add_argument("--neck", choices=NECKS, default="mean",
                   help="PPG neck over real-time clicks (paper: gru; README says why mean)")  # fmt: skip
    p.add_argument("--gamma", type=float, default=1.0, help="session weight γ of Eq. 7")
    p.add_argument("--finetune-steps", type=int_at_least(0), default=10,
                   help="finetune: Adam steps per session on its real-time samples (0: base)")  # fmt: skip
    p.add_argument("--finetune-lr", type=float, default=1e-2, help="finetune: Adam learning rate")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="images: train without random flips and shifts")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)

    d = subparsers.add_parser(
        "demo", help="train base and DUET on the embedded synthetic data and compare"
    )
    d.add_argument("--out", type=Path, default=Path("runs/demo"))
    d.add_argument("--backbone", default="din", choices=BACKBONES[:3])
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=run_demo)

    c = subparsers.add_parser("compare", help="print finished runs' metrics side by side")
    c.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.json")
    c.set_defaults(func=run_compare)


def _check_combination(args: argparse.Namespace, kind: str) -> None:
    image_backbone = args.backbone.startswith("mobilenet")
    if image_backbone != (kind == "images"):
        raise SystemExit(
            f"duet-sim train: error: backbone {args.backbone!r} does not fit {kind} dataset {args.dataset!r}"
        )


def _model_config(args: argparse.Namespace, meta: dict[str, Any]):
    from duet.builders import mobilenet_umn, sequence_umn

    method = "base" if args.method == "finetune" else args.method  # finetune adapts a base model
    gen = {"num_generators": args.num_generators, "tau": args.tau}
    if meta["kind"] == "clicks":
        return sequence_umn(
            args.backbone, method, meta["num_items"], history_length=meta["history_length"],
            neck=args.neck, **gen,
        )  # fmt: skip
    variant = args.backbone.removeprefix("mobilenet_v3_")
    cfg = mobilenet_umn(
        variant, method, meta["num_classes"], in_channels=meta["channels"], head_hidden=128, **gen
    )
    return cfg


def prepared_data(args: argparse.Namespace) -> Path:
    """The prepared directory: ``--prepared`` as given, else prepared into ``OUT/data``."""
    if args.prepared is not None:
        return args.prepared
    from pipelines.prepare import prepare

    prepare(args.dataset, args.out / "data", data_dir=args.data_dir, seed=args.data_seed)
    return args.out / "data"


def run_train(args: argparse.Namespace) -> int:
    import torch

    from duet.checkpoint import save_checkpoint
    from duet.cost import on_device_flops, on_device_params
    from duet.finetune import FinetuneConfig
    from duet.model import DeviceModel
    from duet.train import TrainConfig, evaluate, train
    from pipelines.tensors import load_meta, load_samples

    args.out.mkdir(parents=True, exist_ok=True)
    data = prepared_data(args)
    meta = load_meta(data)
    _check_combination(args, meta["kind"])
    train_set, test_set = load_samples(data, "train"), load_samples(data, "test")
    torch.manual_seed(args.seed)
    model = DeviceModel(_model_config(args, meta))
    # `is None`, not `or`: an explicit 0 must reach TrainConfig's check, not become a default
    epochs = DEFAULT_EPOCHS[meta["kind"]] if args.epochs is None else args.epochs
    batch_size = DEFAULT_BATCH_SIZE[meta["kind"]] if args.batch_size is None else args.batch_size
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=args.lr, gamma=args.gamma,
                       augment=args.augment, seed=args.seed)  # fmt: skip
    start = time.perf_counter()
    losses = train(model, train_set, tcfg, progress=not args.no_progress)
    train_s = time.perf_counter() - start
    finetune = FinetuneConfig(steps=args.finetune_steps, lr=args.finetune_lr, seed=args.seed)
    metrics = evaluate(model, test_set, args.method, finetune)
    metrics |= {
        "method": args.method, "backbone": args.backbone, "dataset": args.dataset, "seed": args.seed,
        "params": on_device_params(model), "flops": on_device_flops(model, test_set),
        "epochs": epochs, "train_seconds": train_s, "train_samples_per_s": epochs * len(train_set) / train_s,
        "final_loss": losses[-1], "num_train": len(train_set), "num_test": len(test_set),
    }  # fmt: skip
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    save_checkpoint(model, args.out, info={"args": info, "dataset_meta": _meta_summary(meta)})
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(_format_table([metrics]))
    return 0


def _meta_summary(meta: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "kind", "num_items", "num_users", "num_classes", "class_names", "history_length",
            "realtime_size", "height", "width", "channels", "schema_version")  # fmt: skip
    return {k: meta[k] for k in keys if k in meta}


COLUMNS = ("method", "backbone", "seed", "auc", "session_auc", "user_auc", "ndcg@10", "hr@10",
           "logloss", "accuracy", "latency_ms", "params")  # fmt: skip


def _format_table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    table = [cols] + [[cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in table
    )


def train_cell(out: Path, *, dataset: str, backbone: str, method: str, **options: Any) -> int:
    """Train one cell exactly as `duet-sim train` does, defaults included.

    ``options`` override the train parser's destinations (``prepared``, ``epochs``,
    ``num_generators``, ``seed``, ``no_progress``...); an unknown name is a TypeError.
    """
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--dataset", dataset, "--backbone", backbone,
                              "--method", method, "--out", str(out)])  # fmt: skip
    unknown = sorted(set(options) - set(vars(args)))
    if unknown:
        raise TypeError(f"unknown train option(s) {unknown}; accepted: {sorted(vars(args))}")
    vars(args).update(options)
    return run_train(args)


def run_demo(args: argparse.Namespace) -> int:
    """The README's first command: one shared prepared dataset, three methods, one table."""
    from pipelines.prepare import prepare

    data = args.out / "data"
    prepare("synthetic-clicks", data, seed=0)
    runs = []
    for method in ("base", "duet-no-swa", "duet"):
        run = args.out / method
        print(f"== {method} ({args.backbone}) -> {run}")
        train_cell(run, dataset="synthetic-clicks", backbone=args.backbone, method=method,
                   seed=args.seed, prepared=data)  # fmt: skip
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
