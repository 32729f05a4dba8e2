"""The training recipe: one (dataset, backbone, method, seed) cell from prepared data to a
checkpoint and ``metrics.json``. `duet-sim train`, the fleet runner and the paper
benchmarks all call it; the CLI only parses its options.

Shaped like a torchtune recipe: ``TrainRecipe(options, out)`` checks the options,
``setup()`` reads the data and builds the model, ``train()`` fits it on the train split and
selects an epoch on the validation split, ``test()`` reads the test split (only then, and
only once) and evaluates, ``save()`` writes the run directory. ``run()`` does all four.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duet.names import (
    ADAPTED_METHODS,
    BACKBONES,
    CONDITIONS,
    DEFAULT_CONDITION,
    LR_SCHEDULES,
    METHODS,
    NECKS,
    SELECTIONS,
    check_backbone_fits,
)
from duet.tuned import tuned
from pipelines.names import DATASETS

# defaults chosen so a click cell trains in about a minute on a 2-core CPU. Images: the
# paper's Adam lr 1e-3 and weight decay 5e-4 (Table 5); batch 32, not its 64, and 40
# epochs (the most; the best on validation is kept), both chosen on the validation split
# (MobileNetV3-Small at 112x112x3, seed 0, validation accuracy: batch 64 0.640, batch 32
# 0.671, batch 32 without weight decay 0.613; still rising at 40 epochs; docs/results.md).
# The input size is the prepared data's (`duet-sim data prepare --image-size`).
DEFAULT_EPOCHS = {"clicks": 5, "images": 40}
DEFAULT_BATCH_SIZE = {"clicks": 256, "images": 32}
DEFAULT_WEIGHT_DECAY = {"clicks": 0.0, "images": 5e-4}


@dataclass(frozen=True)
class TrainOptions:
    """Every option of `duet-sim train` (its flags are these names with dashes).

    ``epochs``, ``batch_size`` and ``weight_decay`` default per data kind
    (:data:`DEFAULT_EPOCHS`, ...) when left None. ``epochs`` is the most trained: the
    epoch kept is the one with the best validation score (``select="best"``).
    """

    dataset: str
    backbone: str
    method: str
    seed: int = 0  # model initialisation and batch order
    data_dir: Path | None = None  # raw datasets; default $DUET_DATA_DIR
    prepared: Path | None = None  # a `duet-sim data prepare` output; else prepared into OUT/data
    data_seed: int = 0  # negative sampling and synthetic data, when preparing here
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 1e-3  # Adam, paper Table 5
    lr_schedule: str = "constant"  # or "cosine" (to 0 over the epochs)
    weight_decay: float | None = None
    num_generators: int = 5  # N_p, SWA's generators (duet only)
    tau: float = 1.0  # SWA temperature
    neck: str | None = None  # default: duet.tuned (clicks), the mean otherwise
    condition: str = DEFAULT_CONDITION  # what the PPG reads: "session" or "history" (clicks)
    gamma: float = 1.0  # session weight γ of Eq. 7
    finetune_steps: int = 10
    finetune_lr: float = 1e-2
    # generated methods: the global classifier's loss weight; default: duet.tuned, else 1
    global_loss_weight: float | None = None
    # clicks: duet.builders.ARCH_DEFAULTS overrides; default: duet.tuned's for the backbone
    arch: tuple[tuple[str, Any], ...] | None = None
    augment: bool = True  # images: random flips and shifts
    select: str = "best"  # "best" validation epoch, or "last"
    # clicks: also rank each test target against every unseen item (full_hr@k, full_ndcg@k);
    # minutes for DIN on ML-100K, which scores every item as a target
    full_ranking: bool = False
    progress: bool = True
    # train from a Ray Data stream of the train split (pipelines.feeds.ParquetFeed) instead
    # of loading it: for train splits larger than memory
    stream: bool = False
    # train, select and test on users 0..users-1 only: a sample of a population too large to
    # train on in the time a run has (the fleet still plays every user, as a cloud model
    # serves users it was not trained on)
    users: int | None = None
    # an adapted method (finetune, finetune-user): adapt this finished base run instead of
    # training the same base model again; its options must be these but for the method
    base_run: Path | None = None

    def __post_init__(self) -> None:
        names = {
            "dataset": DATASETS,
            "backbone": BACKBONES,
            "method": METHODS,
            "neck": NECKS,
            "condition": CONDITIONS,
            "select": SELECTIONS,
            "lr_schedule": LR_SCHEDULES,
        }
        for key, known in names.items():
            if getattr(self, key) not in known and not (key == "neck" and self.neck is None):
                raise ValueError(
                    f"{key}: expected one of {', '.join(known)}, got {getattr(self, key)!r}"
                )
        check_backbone_fits(self.backbone, DATASETS[self.dataset].kind)
        if self.base_run is not None and self.method not in ADAPTED_METHODS:
            raise ValueError(
                f"base_run: only adapted methods {list(ADAPTED_METHODS)} reuse a "
                f"base model, not {self.method!r}"
            )
        if self.stream and self.users is not None:
            raise ValueError("users: a sample of users is loaded, not streamed; drop --stream")
        if self.stream and self.method == "finetune-user":
            raise ValueError(
                "stream: finetune-user adapts on each user's training rows, held in memory"
            )
        if self.arch and self.kind != "clicks":
            raise ValueError("arch: overrides the click backbones; images take none")
        if self.condition == "history" and self.kind != "clicks":
            raise ValueError(f"condition: 'history' reads click histories, {self.dataset} has none")
        for key, minimum in (
            ("epochs", 1),
            ("batch_size", 1),
            ("num_generators", 1),
            ("finetune_steps", 0),
            ("users", 1),
        ):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < minimum):
                raise ValueError(f"{key}: expected an int >= {minimum}, got {value!r}")
        # TrainConfig, PPGConfig and FinetuneConfig check the floats when built (setup)

    @property
    def kind(self) -> str:
        return DATASETS[self.dataset].kind

    def resolved(self) -> TrainOptions:
        """These options with every default filled in (what the run used): per data kind
        (epochs, batch size, weight decay), and per backbone and method the choices made on
        validation (:mod:`duet.tuned`: architecture, neck, global loss weight)."""
        defaults = {
            "epochs": DEFAULT_EPOCHS,
            "batch_size": DEFAULT_BATCH_SIZE,
            "weight_decay": DEFAULT_WEIGHT_DECAY,
        }
        filled = {k: table[self.kind] for k, table in defaults.items() if getattr(self, k) is None}
        choice = tuned(self.backbone, self.method, self.condition)
        for key in ("arch", "neck", "global_loss_weight"):
            if getattr(self, key) is None:
                filled[key] = getattr(choice, key)
        return dataclasses.replace(self, **filled)

    def to_json(self) -> dict[str, Any]:
        return {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()
        }

    def same_training(self, other: dict[str, Any]) -> bool:
        """Whether ``other`` (a run's stored options) trained the model these options would:
        every option but the method, the adaptation settings and bookkeeping is equal. An
        option a run predates (added since, e.g. ``stream``) counts as its default."""
        ignore = {
            "method",
            "finetune_steps",
            "finetune_lr",
            "base_run",
            "progress",
            "prepared",
            "data_dir",
            "full_ranking",
        }
        mine = {k: v for k, v in self.to_json().items() if k not in ignore}
        theirs = {k: (tuple(tuple(p) for p in v) if k == "arch" else v) for k, v in other.items()}
        mine = {k: (tuple(tuple(p) for p in v) if k == "arch" else v) for k, v in mine.items()}
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(self)
            if f.default is not dataclasses.MISSING
        }
        return all(theirs.get(k, defaults.get(k)) == v for k, v in mine.items())


def model_config(options: TrainOptions, meta: dict[str, Any]):
    """The ModelConfig a cell trains, from its options and the prepared data's meta."""
    from duet.builders import mobilenet_umn, sequence_umn

    options = options.resolved()  # the tuned choices when the options leave them open

    # an adapted method (finetune) adapts a base model: it trains one
    method = "base" if options.method in ADAPTED_METHODS else options.method
    gen = {"num_generators": options.num_generators, "tau": options.tau}
    if meta["kind"] == "clicks":
        return sequence_umn(
            options.backbone,
            method,
            meta["num_items"],
            history_length=meta["history_length"],
            neck=options.neck,
            condition=options.condition,
            arch=dict(options.arch),
            **gen,
        )
    variant = options.backbone.removeprefix("mobilenet_v3_")
    return mobilenet_umn(
        variant, method, meta["num_classes"], in_channels=meta["channels"], head_hidden=128, **gen
    )


META_SUMMARY_KEYS = (
    "dataset",
    "kind",
    "num_items",
    "num_users",
    "num_classes",
    "class_names",
    "history_length",
    "realtime_size",
    "height",
    "width",
    "channels",
    "schema_version",
)


def meta_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The dataset facts a checkpoint carries (the fleet and the generator check them)."""
    return {k: meta[k] for k in META_SUMMARY_KEYS if k in meta}


class TrainRecipe:
    """Train, select on validation, test once, save: one cell of the paper's tables.

    Args:
        options (TrainOptions): what to train; checked when built.
        out (Path): the run directory (``metrics.json``, ``model.pt``, ``config.json``;
            ``data/`` when the options name no prepared directory).

    Raises:
        ValueError: from ``setup()``, when the prepared data does not fit the options.
    """

    def __init__(self, options: TrainOptions, out: Path):
        self.options = options.resolved()
        self.out = Path(out)
        self.metrics: dict[str, Any] = {}
        self._started_ray = False  # a local Ray started for the stream feed, stopped by close

    # ---- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from duet.model import DeviceModel
        from pipelines.tensors import load_meta

        self.out.mkdir(parents=True, exist_ok=True)
        _reset_peak_rss()  # this cell's peak, also when one process trains many cells
        self.data = self._setup_data()
        self.meta = load_meta(self.data)
        if self.meta["kind"] != self.options.kind:
            raise ValueError(
                f"prepared data {self.data} holds {self.meta['dataset']}, "
                f"not {self.options.dataset}"
            )
        self.train_set = self._feed() if self.options.stream else self._load("train")
        self.val_set = self._load("val")
        torch.manual_seed(self.options.seed)
        self.model = DeviceModel(model_config(self.options, self.meta))
        if self.options.base_run is not None:
            self._load_base_run(self.options.base_run)

    def _load_base_run(self, run: Path) -> None:
        """Take the weights and training metrics of a finished base run trained exactly as
        this one would be (checked), instead of training them again."""
        from duet.checkpoint import load_checkpoint

        model, info = load_checkpoint(run)
        if model.cfg != self.model.cfg or not self.options.same_training(info.get("args", {})):
            raise ValueError(
                f"base_run {run} was not trained with these options "
                "(architecture, seed, epochs or data differ)"
            )
        self.model = model
        base = json.loads((Path(run) / "metrics.json").read_text())
        keep = (
            "epochs",
            "selected_epoch",
            "train_seconds",
            "train_samples_per_s",
            "final_loss",
            "num_train",
            "num_val",
            "val_curve",
            "train_peak_rss_bytes",
        )
        self.metrics |= {k: base[k] for k in keep if k in base} | {"base_run": str(run)}

    def _setup_data(self) -> Path:
        if self.options.prepared is not None:
            return self.options.prepared
        from pipelines.prepare import prepare

        o = self.options
        prepare(o.dataset, self.out / "data", data_dir=o.data_dir, seed=o.data_seed)
        return self.out / "data"

    def _load(self, split: str):
        from pipelines.tensors import load_samples

        return load_samples(self.data, split, self.options.users)

    def _feed(self):
        """The train split as a Ray Data stream, on the Ray this process has or a local one
        (quiet: what Ray prints on start goes to OUT/ray.log, and Ray Data draws no
        progress bars of its own beside ours)."""
        import logging

        import ray
        from ray.data import DataContext

        from pipelines.feeds import ParquetFeed
        from simulation.ray_logs import LOG_NAME, ray_output_to

        if not ray.is_initialized():
            with ray_output_to(self.out / LOG_NAME):
                ray.init(address="local", include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        return ParquetFeed(self.data, "train")

    # ---- train and select ----------------------------------------------------------------
    def train(self) -> None:
        """Fit on the train split; keep the epoch with the best validation score."""
        from duet.train import TrainConfig, TrainLog, train

        o = self.options
        cfg = TrainConfig(
            epochs=o.epochs,
            batch_size=o.batch_size,
            lr=o.lr,
            lr_schedule=o.lr_schedule,
            global_loss_weight=o.global_loss_weight,
            weight_decay=o.weight_decay,
            gamma=o.gamma,
            augment=o.augment,
            select=o.select,
            seed=o.seed,
        )
        val = self.val_set if len(self.val_set) else None
        if o.base_run is not None:  # adapting a base model trained before: nothing to fit
            self.log = TrainLog(selected_epoch=self.metrics.get("selected_epoch", 0))
            if val is not None:
                self.metrics |= {
                    f"val_{k}": v for k, v in self._evaluate(val).items() if k != "latency_ms"
                }
            return
        start = time.perf_counter()
        self.log = train(self.model, self.train_set, cfg, progress=o.progress, val=val)
        train_s = time.perf_counter() - start
        self.metrics |= {
            "epochs": o.epochs,
            "selected_epoch": self.log.selected_epoch,
            "train_seconds": train_s,
            "train_samples_per_s": o.epochs * len(self.train_set) / train_s,
            "final_loss": self.log.losses[-1],
            "num_train": len(self.train_set),
            "num_val": len(self.val_set),
            "val_curve": [v[_selection_key(o)] for v in self.log.val],
            "train_peak_rss_bytes": _peak_rss_bytes(),
        }
        if val is not None:
            # an adapted method is validated as it is scored (after adaptation); the others
            # as they were when their epoch was selected, which is the model they hold now
            selected = self._evaluate(val) if o.method in ADAPTED_METHODS else self.log.selected_val
            self.metrics |= {f"val_{k}": v for k, v in selected.items() if k != "latency_ms"}

    # ---- test, once ----------------------------------------------------------------------
    def test(self) -> dict[str, Any]:
        """Read the test split and evaluate the selected model on it (after :meth:`train`)."""
        from duet.cost import on_device_flops, on_device_params

        if not hasattr(self, "log"):
            raise RuntimeError("TrainRecipe.test() before train(): the model is not selected")
        test_set = self._load("test")
        self.metrics |= self._evaluate(test_set)
        if self.meta["kind"] == "clicks" and self.options.full_ranking:
            self.metrics |= self._full_ranking(test_set)
        self.metrics |= self._identity() | {
            "params": on_device_params(self.model),
            "flops": on_device_flops(self.model, test_set),
            "num_test": len(test_set),
            "peak_rss_bytes": _peak_rss_bytes(),  # the whole cell: training and evaluation
        }
        return self.metrics

    def _identity(self) -> dict[str, Any]:
        o = self.options
        return {
            "method": o.method,
            "backbone": o.backbone,
            "dataset": o.dataset,
            "seed": o.seed,
            "options": o.to_json(),
        }

    def _adaptation(self):
        from duet.finetune import FinetuneConfig, UserFinetuneConfig
        from duet.train import Adaptation

        o = self.options
        return Adaptation(
            FinetuneConfig(steps=o.finetune_steps, lr=o.finetune_lr, seed=o.seed),
            UserFinetuneConfig(seed=o.seed),
            history=self.train_set,
        )

    def _evaluate(self, samples) -> dict[str, float]:
        from duet.train import evaluate

        return evaluate(self.model, samples, self.options.method, self._adaptation())

    def _full_ranking(self, samples) -> dict[str, float]:
        from duet.train import full_ranking
        from pipelines.tensors import load_seen

        return full_ranking(
            self.model, samples, self.options.method, self._adaptation(), *load_seen(self.data)
        )

    # ---- save ----------------------------------------------------------------------------
    def save(self) -> None:
        from duet.checkpoint import save_checkpoint

        info = {"args": self.options.to_json(), "dataset_meta": meta_summary(self.meta)}
        save_checkpoint(self.model, self.out, info=info)
        text = json.dumps(self.metrics, indent=2, sort_keys=True) + "\n"
        (self.out / "metrics.json").write_text(text)

    def run(self, test: bool = True) -> dict[str, Any]:
        """setup, train, test (unless ``test`` is False: a tuning run), save."""
        try:
            self.setup()
            self.train()
            if test:
                self.test()
            else:
                self.metrics |= self._identity() | {"test": "not read"}
            self.save()
        finally:
            self.close()
        return self.metrics

    def close(self) -> None:
        """Stop the Ray this recipe started for its feed (none otherwise)."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False


def _reset_peak_rss() -> None:
    """Reset this process's peak resident set (Linux: ``5`` to ``/proc/self/clear_refs``),
    so :func:`_peak_rss_bytes` measures from here; elsewhere the peak stays cumulative."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_bytes() -> int:
    """Peak resident set of this process since :func:`_reset_peak_rss` (``VmHWM``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _selection_key(options: TrainOptions) -> str:
    from duet.train import SELECTION_METRIC

    return SELECTION_METRIC[options.kind]
