"""Training (Eq. 7) and model selection on the validation split.

The UMN (backbone + global classifier) and the PPG are optimized jointly with Adam
(lr 1e-3, paper Table 5) on the loss the model's method defines (duet/method.py; the
built-ins use duet/losses.py: each sample weighted by γ^t, t its position in its session).

Model selection: after every epoch the model is scored on the validation split and the
epoch with the best score is kept (AUC for clicks, accuracy for images). The authors'
code (HelloZicky/DUET, ``code/main/multi_metric_meta_train.py``) keeps the epoch with the
best *test* AUC instead; here the test split is not an argument of :func:`train` at all.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from duet.data import Feed, ImageSamples, Samples, epoch_batches, num_batches
from duet.evaluate import predict, sample_metrics
from duet.method import METHODS, Method
from duet.model import DeviceModel
from duet.names import LR_SCHEDULES, SELECTIONS

# the validation metric an epoch is selected by, per data kind (higher is better)
SELECTION_METRIC = {"clicks": "auc", "images": "accuracy"}


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3  # Adam, paper Table 5
    lr_schedule: str = "constant"  # "cosine": decay to 0 over the epochs trained
    weight_decay: float = 0.0  # Adam's L2 term; the paper's CK+ runs use 5e-4 (Table 5)
    gamma: float = 1.0  # γ in Eq. 7; 1 weighs every position in a session equally
    global_loss_weight: float = 1.0  # UMN loss kept next to the generated classifier's
    augment: bool = True  # images only: random flip and shift, see augment_images
    select: str = "best"  # "best": the epoch with the best validation score; "last"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not self.weight_decay >= 0:  # also refuses NaN
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {self.select!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )


@dataclass
class TrainLog:
    """What :func:`train` did: every epoch's mean loss and validation metrics, and which
    epoch's weights the model holds now (1-based)."""

    losses: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    selected_epoch: int = 0

    @property
    def selected_val(self) -> dict[str, float]:
        """Validation metrics of the selected epoch ({} without a validation split)."""
        return self.val[self.selected_epoch - 1] if self.val else {}


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Subnormal floats (below 1.2e-38) read and written as zero while training, then
    torch's default (kept) again.

    Why: Adam's moments of parameters that stop getting gradients (items no batch holds
    for a while, generator rows) decay by 0.9 a step into the subnormal range, where x86
    arithmetic takes a slow microcode path. Late in a SASRec DUET epoch a fifth of Adam's
    moments are subnormal and its fused step goes from 1.3 to 8.4 ms
    (benchmarks/RESULTS.md). A subnormal moment moves a parameter by less than 1e-30:
    SASRec DUET's weights after a whole ML-100K epoch are bit-identical either way.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train(
    model: DeviceModel,
    samples: Samples | Feed,
    cfg: TrainConfig,
    progress: bool = True,
    val: Samples | None = None,
) -> TrainLog:
    """Train in place on ``samples``, score every epoch on ``val`` and keep the epoch that
    ``cfg.select`` picks (the last one without ``val``)."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    # the PPG's real-time frames get a stream of their own (augment_images)
    g_realtime = torch.Generator().manual_seed(cfg.seed + 1) if model.ppg is not None else None
    steps = num_batches(samples, cfg.batch_size)
    opt, schedule = _optimizer(model, cfg, steps)
    method = METHODS[model.cfg.method]  # the loss is the trained method's (Method.loss)
    log, best_state, best = TrainLog(), None, float("-inf")
    key = SELECTION_METRIC[model.cfg.kind]
    bar = tqdm(
        total=cfg.epochs * steps,
        disable=not progress,
        desc=f"train {model.cfg.method}",
        unit="batch",
    )
    with denormals_flushed():
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            batches = epoch_batches(samples, cfg.batch_size, shuffle=True, generator=g)
            total = _train_epoch(model, batches, cfg, method, opt, schedule, g, g_realtime, bar)
            log.losses.append(total / steps)
            bar.set_postfix(epoch=epoch, loss=f"{log.losses[-1]:.4f}")
            if val is None:
                continue
            log.val.append(validate(model, samples, val, cfg.batch_size))
            bar.set_postfix(
                epoch=epoch, loss=f"{log.losses[-1]:.4f}", val=f"{log.val[-1][key]:.4f}"
            )
            if cfg.select == "best" and log.val[-1][key] > best:  # ties keep the earlier epoch
                best_state, best, log.selected_epoch = (
                    copy.deepcopy(model.state_dict()),
                    log.val[-1][key],
                    epoch,
                )
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)  # with the BatchNorm statistics validated
    else:
        recalibrate_batchnorm(model, samples, cfg.batch_size)
        log.selected_epoch = cfg.epochs
    model.eval()
    return log


def _optimizer(
    model: DeviceModel, cfg: TrainConfig, steps: int
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LRScheduler | None]:
    """Adam over every parameter, and the per-step learning-rate schedule (None for a
    constant rate).

    Why fused: one kernel for every parameter instead of ~10 ops each (bench_train.py: 1.2x
    the DUET step on CPU); the same update up to float rounding. The cosine schedule steps
    once per batch, reaching 0 at the last step of the last epoch.
    """
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if cfg.lr_schedule != "cosine":
        return opt, None
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)


def _train_epoch(
    model: DeviceModel,
    batches: Iterable[Samples],
    cfg: TrainConfig,
    method: type[Method],
    opt: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler | None,
    g: torch.Generator,
    g_realtime: torch.Generator | None,
    bar: tqdm,
) -> float:
    """One optimizer step per batch on the method's loss; the losses' sum (``train``
    averages it over the epoch's steps).

    Image batches are augmented from ``g``, the stream that shuffles them, as they are drawn:
    the draws interleave as in one loop over the epoch, which the pinned training result
    (tests/simulation/test_training_pinned.py) depends on.
    """
    total = 0.0
    for batch in batches:
        if cfg.augment and isinstance(batch, ImageSamples):
            batch = augment_images(batch, g, g_realtime)
        loss = method.loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        total += loss.item()  # sync point, fine on CPU
        bar.update()
    return total


def validate(
    model: DeviceModel, train_samples: Samples | Feed, val: Samples, batch_size: int
) -> dict[str, float]:
    """The model's own metrics on ``val`` as they would be reported now: BatchNorm
    statistics recomputed on the current weights first, as after the last epoch.

    Runs under a forked RNG, so validating leaves the training run's random draws
    (dropout, the generator's own streams are separate) exactly as without it: the weights
    of epoch k are the same whether or not earlier epochs were validated.
    """
    with torch.random.fork_rng(devices=[]):
        recalibrate_batchnorm(model, train_samples, batch_size)
        return sample_metrics(predict(model, val), val)


SHIFT_FRACTION = 1 / 12  # of the frame's side: 4 pixels of 48, 19 of 224; faces stay in frame


def augment_images(
    s: ImageSamples, g: torch.Generator, realtime: torch.Generator | None = None
) -> ImageSamples:
    """The scored frames flipped and shifted (:func:`flip_and_shift`, draws from ``g``);
    with ``realtime``, the sessions' real-time frames too, from that stream of their own.

    Why the scored frames: CK+48 has 690 training frames of 118 faces, and each subject's
    last video is the test set. Without it MobileNetV3 learns the faces: 1.00 train and
    0.22 test accuracy (docs/results.md). Expressions are near-symmetric and small shifts
    keep the face, so neither changes the class.

    Why the real-time frames: the PPG reads one per session, about 230 in all; left
    unchanged, they are the same 230 inputs every epoch, and the generator learns them
    (MobileNetV3-Large DUET, seeds 0-2: 0.451, and 0.536 with them augmented, against base
    0.568; docs/results.md). Their own stream leaves the scored frames' draws, and so any method
    without a PPG, exactly as before.
    """
    s = dataclasses.replace(s, pixels=flip_and_shift(s.pixels, g))
    if realtime is not None:
        s = dataclasses.replace(s, realtime=flip_and_shift(s.realtime, realtime))
    return s


def flip_and_shift(x: Tensor, g: torch.Generator) -> Tensor:
    """Frames (N, C, H, W) flipped left-right (half of them) and shifted by up to
    ``SHIFT_FRACTION`` of their side (edges replicated), one draw per frame."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    shift = max(1, round(min(h, w) * SHIFT_FRACTION))
    dy, dx = torch.randint(-shift, shift + 1, (2, b), generator=g)
    rows = (torch.arange(h)[None, :] + dy[:, None]).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w)[None, :] + dx[:, None]).clamp(0, w - 1)  # (B, W)
    x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))


@torch.no_grad()
def recalibrate_batchnorm(model: DeviceModel, samples: Samples | Feed, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to their average over the final weights.

    Why: with ~45 optimizer steps (CK+48) the running averages still mix statistics of
    early, very different weights, and eval-mode MobileNet then predicted one class for
    every frame (0.07 test accuracy, 1.00 in train mode on the same frames). One pass over
    the training frames in train mode with a cumulative average (``momentum=None``) fixes
    that ("precise BN"). A model without BatchNorm is untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in epoch_batches(samples, batch_size, shuffle=False):
        model(batch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()
