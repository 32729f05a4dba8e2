"""Training (Eq. 7), model selection on the validation split, and offline evaluation of
every method on the same code path.

The UMN (backbone + global classifier) and the PPG are optimized jointly with Adam
(lr 1e-3, paper Table 5). Each sample's loss is weighted by γ^t, t its position in its
session. Generated methods also keep the global classifier's loss: the UMN is trained on
all history either way, and the global classifier is the device's fallback when the
generator cannot be reached.

Model selection: after every epoch the model is scored on the validation split and the
epoch with the best score is kept (AUC for clicks, accuracy for images). The authors'
code keeps the epoch with the best *test* AUC instead (PAPER.md); here the test split is
not an argument of :func:`train` at all.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from duet.data import (
    ClickSamples,
    Feed,
    ImageSamples,
    Samples,
    epoch_batches,
    iterate_batches,
    num_batches,
)
from duet.dynamic import Params
from duet.finetune import (
    FinetuneConfig,
    UserFinetuneConfig,
    finetune_params,
    finetune_user_logits,
    user_adapted,
)
from duet.metrics import click_metrics, image_metrics
from duet.model import DeviceModel
from duet.names import LR_SCHEDULES, SELECTIONS
from duet.ranking import full_ranks, ranking_metrics_from_ranks

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


def row_loss(logits: Tensor, s: Samples) -> Tensor:
    """Unreduced loss per row: BCE for clicks, cross-entropy for image classes."""
    if isinstance(s, ClickSamples):
        return F.binary_cross_entropy_with_logits(logits, s.label, reduction="none")
    return F.cross_entropy(logits, s.label, reduction="none")


def weighted_loss(model: DeviceModel, s: Samples, cfg: TrainConfig) -> Tensor:
    """Eq. 7: Σ γ^t ℓ / Σ γ^t over the batch, for the method's head plus the global head."""
    w = cfg.gamma ** s.position.float()
    global_logits, gen_logits = model(s)
    loss = (row_loss(global_logits, s) * w).sum() / w.sum()
    if gen_logits is None:
        return loss
    gen = (row_loss(gen_logits, s) * w).sum() / w.sum()
    return gen + cfg.global_loss_weight * loss


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
    # fused: one kernel for every parameter instead of ~10 ops each (bench_train.py: 1.2x
    # the DUET step on CPU); the same update up to float rounding
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    steps = num_batches(samples, cfg.batch_size)
    schedule = None
    if cfg.lr_schedule == "cosine":  # per step, to 0 at the last one
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
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
            total = 0.0
            for batch in batches:
                if cfg.augment and isinstance(batch, ImageSamples):
                    batch = augment_images(batch, g, g_realtime)
                loss = weighted_loss(model, batch, cfg)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if schedule is not None:
                    schedule.step()
                total += loss.item()  # sync point, fine on CPU
                bar.update()
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


def sample_metrics(logits: Tensor, samples: Samples) -> dict[str, float]:
    """Every metric of ``logits`` scored against ``samples``' labels."""
    if isinstance(samples, ClickSamples):
        return click_metrics(logits, samples.label, samples.session, samples.user, samples.group)
    return image_metrics(logits, samples.label, samples.session, samples.user)


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


@torch.no_grad()
def predict(model: DeviceModel, samples: Samples, batch_size: int = 4096) -> Tensor:
    """The method's logits for every row (generated, else global), in row order.

    Written into one tensor allocated up front, and each batch dropped before the next is
    built: keeping every batch's small logits tensor alive (a list to concatenate) left one
    long-lived chunk inside each batch's freed temporaries, so glibc's heap could not reuse
    them and grew by ~10 MB a batch (DIN base on ML-100K test, 233 batches of 4096 rows:
    0.6 GB before predict, 0.9-2.9 GB after, varying run to run; 0.8 GB this way).
    """
    model.eval()
    out: Tensor | None = None
    start = 0
    for batch in iterate_batches(samples, batch_size, shuffle=False):
        global_logits, gen_logits = model(batch)
        logits = global_logits if gen_logits is None else gen_logits
        if out is None:
            out = logits.new_empty(len(samples), *logits.shape[1:])
        out[start : start + len(logits)] = logits
        start += len(logits)
        del batch, global_logits, gen_logits, logits  # freed before the next batch is built
    if out is None:
        raise ValueError("predict: no rows to score")
    return out


def predict_finetuned(
    model: DeviceModel, samples: Samples, cfg: FinetuneConfig, sessions_per_chunk: int = 256
) -> Tensor:
    """Logits after per-session fine-tuning, for every row, in row order."""
    logits: Tensor | None = None
    sessions = samples.session.unique()
    for chunk in sessions.split(sessions_per_chunk):
        params = finetune_params(model, samples, chunk, cfg)
        rows = torch.isin(samples.session, chunk).nonzero().squeeze(1)
        sub = samples.index(rows)
        slot = torch.searchsorted(chunk, sub.session)  # chunk is sorted (unique)
        with torch.no_grad():
            feat, temb = model.features(sub)
            chunk_logits = model.score(
                feat[:, None],
                None if temb is None else temb[:, None],
                [(w[slot], b[slot]) for w, b in params],
            )[:, 0]
        if logits is None:
            logits = torch.empty(len(samples), *chunk_logits.shape[1:])
        logits[rows] = chunk_logits
    assert logits is not None, "no sessions to evaluate"
    return logits


@dataclass(frozen=True)
class Adaptation:
    """How the adapted methods adapt a trained base model: ``finetune`` per session,
    ``finetune-user`` per user on ``history``, that user's labelled rows (the train split)."""

    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    user: UserFinetuneConfig = field(default_factory=UserFinetuneConfig)
    history: Samples | None = None


def method_logits(model: DeviceModel, samples: Samples, method: str, adapt: Adaptation) -> Tensor:
    """The logits ``method`` is judged by, for every row of ``samples`` in row order."""
    if method == "finetune":
        return predict_finetuned(model, samples, adapt.finetune)
    if method == "finetune-user":
        if adapt.history is None:
            raise ValueError("finetune-user needs the users' labelled rows (Adaptation.history)")
        return finetune_user_logits(model, adapt.history, samples, adapt.user)
    return predict(model, samples)


def row_params(model: DeviceModel, s: Samples, method: str, adapt: Adaptation) -> Params:
    """The classifier parameters ``method`` scores each row of ``s`` with, (B, O, I) and
    (B, O) per dynamic layer; finetune-user adapts whole models (see :func:`full_ranking`)."""
    if model.generates:
        return model.generated_params(s)
    if method == "finetune":
        sessions, inverse = s.session.unique(return_inverse=True)
        params = finetune_params(model, s, sessions, adapt.finetune)
        return [(w[inverse], b[inverse]) for w, b in params]
    return model.classifier.params(len(s))


def full_ranking(
    model: DeviceModel,
    samples: ClickSamples,
    method: str,
    adapt: Adaptation,
    seen_ptr: Tensor,
    seen_items: Tensor,
) -> dict[str, float]:
    """``full_hr@k`` / ``full_ndcg@k``: each positive's target ranked against every item its
    user never interacted with, with the parameters ``method`` scores that row with."""
    pos = samples.index((samples.label > 0.5).nonzero().squeeze(1))
    if method != "finetune-user":
        rank = full_ranks(
            model, pos, partial(row_params, model, method=method, adapt=adapt), seen_ptr, seen_items
        )
        return ranking_metrics_from_ranks(rank)
    if adapt.history is None:
        raise ValueError("finetune-user needs the users' labelled rows (Adaptation.history)")
    rank = torch.empty(len(pos), dtype=torch.double)
    for user, tuned in user_adapted(model, adapt.history, pos.user.unique(), adapt.user):
        rows = (pos.user == user).nonzero().squeeze(1)
        base_params = partial(row_params, tuned, method="base", adapt=adapt)  # tuned's own
        rank[rows] = full_ranks(tuned, pos.index(rows), base_params, seen_ptr, seen_items)
    return ranking_metrics_from_ranks(rank)


def adaptation_ms(
    model: DeviceModel, samples: Samples, method: str, adapt: Adaptation, repeats: int = 5
) -> float:
    """Wall time to adapt one device's classifier, the paper's "time delay" (Table 1).

    finetune: k gradient steps on one session's real-time samples; finetune-user: the
    authors' per-user epoch over one user's training rows (and scoring them); generated
    methods: one PPG forward for one device (the cloud's service time, transfer excluded);
    base: nothing to adapt. All on this CPU.
    """
    if method == "base":
        return 0.0
    one = samples.index(torch.tensor([0]))
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        if method == "finetune":
            finetune_params(model, samples, samples.session[:1], adapt.finetune)
        elif method == "finetune-user":
            method_logits(model, one, method, adapt)
        else:
            with torch.no_grad():
                model.generated_params(one)
        timings.append(time.perf_counter() - start)
    return 1000 * sorted(timings)[len(timings) // 2]


def evaluate(
    model: DeviceModel, samples: Samples, method: str, adapt: Adaptation | None = None
) -> dict[str, float]:
    """Metrics of ``method`` on ``samples`` (an adapted method adapts ``model`` first)."""
    adapt = adapt or Adaptation()
    metrics = sample_metrics(method_logits(model, samples, method, adapt), samples)
    metrics["latency_ms"] = adaptation_ms(model, samples, method, adapt)
    return metrics
