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
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass

from duet.backbone import BACKBONES, ModelOptions, check_backbone_fits
from duet.method import METHODS
from duet.names import (
    CONDITIONS,
    DEFAULT_CONDITION,
    LR_SCHEDULES,
    NECKS,
    SELECTIONS,
)
from duet.registry import Registry
from duet.tuned import tuned
from pipelines.datasets import DATASETS

# defaults chosen so a click cell trains in about a minute on a 2-core CPU. Images: the
# paper's Adam lr 1e-3 and weight decay 5e-4 (Table 5); batch 32, not its 64, and 40
# epochs (the most; the best on validation is kept), both chosen on the validation split
# (MobileNetV3-Small at 112x112x3, seed 0, validation accuracy: batch 64 0.640, batch 32
# 0.671, batch 32 without weight decay 0.613; still rising at 40 epochs; docs/results.md).
# The input size is the prepared data's (`duet-sim data prepare --image-size`).
DEFAULT_EPOCHS = {"clicks": 5, "images": 40}
DEFAULT_BATCH_SIZE = {"clicks": 256, "images": 32}
DEFAULT_WEIGHT_DECAY = {"clicks": 0.0, "images": 5e-4}


PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


def _choice(registry: Registry) -> Any:
    """A name checked against ``registry`` when the options are built (a plugin's names
    too); the CLI takes its choices from the same registry."""
    return Annotated[str, AfterValidator(registry.check), registry]


@dataclass(frozen=True, config=ConfigDict(extra="forbid", allow_inf_nan=False))
class TrainOptions:
    """Every option of `duet-sim train`, declared once: the CLI's flags are these fields
    (simulation/flags.py), and a scenario's ``model.train`` takes :data:`TRAIN_SETTINGS` of
    them (simulation/scenario.py).

    ``epochs``, ``batch_size`` and ``weight_decay`` default per data kind
    (:data:`DEFAULT_EPOCHS`, ...) when left None; ``arch``, ``neck`` and
    ``global_loss_weight`` default to the choices made on validation (duet/tuned.py).
    """

    dataset: _choice(DATASETS) = Field(description="the dataset to train on")
    backbone: _choice(BACKBONES) = Field(description="the model's backbone")
    method: _choice(METHODS) = Field(description="the method (duet/method.py)")
    seed: int = Field(0, description="model initialisation and batch order")
    data_dir: Path | None = Field(None, description="raw datasets (default $DUET_DATA_DIR)")
    prepared: Path | None = Field(
        None, description="a `duet-sim data prepare` output; else prepared into OUT/data"
    )
    data_seed: int = Field(0, description="negative sampling and synthetic data, when preparing")
    epochs: PositiveInt | None = Field(
        None,
        description="most epochs trained; the best on validation is kept "
        f"(default: {DEFAULT_EPOCHS['clicks']} clicks, {DEFAULT_EPOCHS['images']} images)",
    )
    batch_size: PositiveInt | None = Field(
        None,
        description=f"default: {DEFAULT_BATCH_SIZE['clicks']} clicks, "
        f"{DEFAULT_BATCH_SIZE['images']} images",
    )
    lr: PositiveFloat = Field(1e-3, description="Adam's learning rate (paper Table 5)")
    lr_schedule: Literal[LR_SCHEDULES] = Field(  # type: ignore[valid-type]
        "constant", description="constant (the paper's Adam rate) or cosine decay to 0"
    )
    weight_decay: NonNegativeFloat | None = Field(
        None, description="Adam's L2 term (default: 0 clicks, 5e-4 images, paper Table 5)"
    )
    num_generators: PositiveInt = Field(5, description="N_p, SWA's generators (duet)")
    tau: PositiveFloat = Field(1.0, description="SWA temperature")
    neck: Literal[NECKS] | None = Field(  # type: ignore[valid-type]
        None,
        description="PPG neck (default: chosen on validation per backbone and conditioning, "
        "duet/tuned.py; the paper's is gru)",
    )
    condition: Literal[CONDITIONS] = Field(  # type: ignore[valid-type]
        DEFAULT_CONDITION,
        description="what the PPG reads: the session's real-time clicks (the paper's text) "
        "or each impression's own history (the authors' code)",
    )
    gamma: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="session weight γ of Eq. 7")
    finetune_steps: Annotated[int, Field(ge=0)] = Field(
        10, description="finetune: Adam steps per session on its real-time samples (0: base)"
    )
    finetune_lr: PositiveFloat = Field(1e-2, description="finetune: Adam learning rate")
    global_loss_weight: NonNegativeFloat | None = Field(
        None,
        description="generated methods: weight of the global classifier's loss (theirs: 0; "
        "default: duet/tuned.py)",
    )
    arch: tuple[tuple[str, Any], ...] | None = Field(
        None,
        description="clicks: backbone choices (duet.builders.ARCH_DEFAULTS); "
        "default: duet/tuned.py's for the backbone",
    )
    augment: bool = Field(True, description="images: train with random flips and shifts")
    select: Literal[SELECTIONS] = Field(  # type: ignore[valid-type]
        "best", description="the epoch kept: best on the validation split, or the last"
    )
    full_ranking: bool = Field(
        False,
        description="clicks: also rank each test target among every unseen item "
        "(full_hr@k, full_ndcg@k; minutes for DIN)",
    )
    progress: bool = Field(True, description="draw progress bars")
    stream: bool = Field(
        False,
        description="stream the train split through Ray Data instead of loading it "
        "(train splits larger than memory; starts a local Ray)",
    )
    users: PositiveInt | None = Field(
        None,
        description="train, select and test on users 0..N-1 only (a sample of a population "
        "too large to train on; a fleet still plays every user)",
    )
    base_run: Path | None = Field(
        None,
        description="a method that adapts a trained model: adapt this finished run's model "
        "instead of training it again (its options must be these but for the method)",
    )

    def __post_init__(self) -> None:
        """Checks across options; each field's own bounds are its annotation's."""
        check_backbone_fits(self.backbone, DATASETS[self.dataset].kind)
        method = METHODS[self.method]
        if self.base_run is not None and method.adapts is None:
            raise ValueError(
                f"base_run: only methods that adapt a trained model reuse one, not {self.method!r}"
            )
        if self.stream and self.users is not None:
            raise ValueError("users: a sample of users is loaded, not streamed; drop --stream")
        if self.stream and method.needs_history:
            raise ValueError(
                f"stream: {self.method} adapts on each user's training rows, held in memory"
            )
        if self.arch and self.kind != "clicks":
            raise ValueError("arch: overrides the click backbones; images take none")
        if self.condition == "history" and self.kind != "clicks":
            raise ValueError(f"condition: 'history' reads click histories, {self.dataset} has none")

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
            name: f.default
            for name, f in type(self).__pydantic_fields__.items()
            if not f.is_required()
        }
        return all(theirs.get(k, defaults.get(k)) == v for k, v in mine.items())


# what a scenario's ``model.train`` may set: how its checkpoints train, not which cell or
# where (the method, condition and neck are each method's, simulation/scenario.py)
TRAIN_SETTINGS = (
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "weight_decay",
    "num_generators",
    "tau",
    "neck",
    "gamma",
    "finetune_steps",
    "finetune_lr",
    "global_loss_weight",
    "augment",
    "select",
    "users",
)


def model_config(options: TrainOptions, meta: dict[str, Any]):
    """The ModelConfig a cell trains, from its options and the prepared data's meta."""
    o = options.resolved()  # the tuned choices when the options leave them open
    shape = ModelOptions(o.method, o.num_generators, o.tau, o.neck, o.condition, o.arch or ())
    return BACKBONES[o.backbone].model_config(shape, meta)


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
            adapts = METHODS[o.method].adapts is not None
            selected = self._evaluate(val) if adapts else self.log.selected_val
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

    def _method(self):
        """The method instance, with its adaptation settings and the users' training rows."""
        from duet.adaptation import Adaptation, FinetuneConfig, UserFinetuneConfig

        o = self.options
        adapt = Adaptation(
            FinetuneConfig(steps=o.finetune_steps, lr=o.finetune_lr, seed=o.seed),
            UserFinetuneConfig(seed=o.seed),
            history=self.train_set,
        )
        return METHODS[o.method](adapt)

    def _evaluate(self, samples) -> dict[str, float]:
        from duet.evaluate import evaluate

        return evaluate(self.model, samples, self._method())

    def _full_ranking(self, samples) -> dict[str, float]:
        from duet.evaluate import full_ranking
        from pipelines.tensors import load_seen

        return full_ranking(self.model, samples, self._method(), load_seen(self.data))

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
