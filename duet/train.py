"""Training (Eq. 7) and offline evaluation of every method on the same code path.

The UMN (backbone + global classifier) and the PPG are optimized jointly with Adam
(lr 1e-3, paper Table 5). Each sample's loss is weighted by γ^t, t its position in its
session. Generated methods also keep the global classifier's loss: the UMN is trained on
all history either way, and the global classifier is the device's fallback when the
generator cannot be reached.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from duet.data import ClickSamples, ImageSamples, Samples, iterate_batches
from duet.finetune import FinetuneConfig, finetune_params
from duet.metrics import click_metrics, image_metrics
from duet.model import DeviceModel


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3  # Adam, paper Table 5
    gamma: float = 1.0  # γ in Eq. 7; 1 weighs every position in a session equally
    global_loss_weight: float = 1.0  # UMN loss kept next to the generated classifier's
    augment: bool = True  # images only: random flip and shift, see augment_images
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
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


def train(
    model: DeviceModel, samples: Samples, cfg: TrainConfig, progress: bool = True
) -> list[float]:
    """Train in place; returns the mean loss of every epoch."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    # the PPG's real-time frames get a stream of their own (augment_images)
    g_realtime = torch.Generator().manual_seed(cfg.seed + 1) if model.ppg is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = -(-len(samples) // cfg.batch_size)
    losses = []
    bar = tqdm(
        total=cfg.epochs * steps,
        disable=not progress,
        desc=f"train {model.cfg.method}",
        unit="batch",
    )
    for epoch in range(cfg.epochs):
        model.train()
        total = 0.0
        for batch in iterate_batches(samples, cfg.batch_size, shuffle=True, generator=g):
            if cfg.augment and isinstance(batch, ImageSamples):
                batch = augment_images(batch, g, g_realtime)
            loss = weighted_loss(model, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()  # sync point, fine on CPU
            bar.update()
        losses.append(total / steps)
        bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
    bar.close()
    recalibrate_batchnorm(model, samples, cfg.batch_size)
    return losses


MAX_SHIFT = 4  # pixels, of 48: faces stay in frame


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
    ``MAX_SHIFT`` pixels (edges replicated), one draw per frame."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2, b), generator=g)
    rows = (torch.arange(h)[None, :] + dy[:, None]).clamp(0, h - 1)  # (B, H)
    cols = (torch.arange(w)[None, :] + dx[:, None]).clamp(0, w - 1)  # (B, W)
    x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))


@torch.no_grad()
def recalibrate_batchnorm(model: DeviceModel, samples: Samples, batch_size: int) -> None:
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
    for batch in iterate_batches(samples, batch_size, shuffle=False):
        model(batch)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def predict(model: DeviceModel, samples: Samples, batch_size: int = 4096) -> Tensor:
    """The method's logits for every row (generated, else global), in row order."""
    model.eval()
    out = []
    for batch in iterate_batches(samples, batch_size, shuffle=False):
        global_logits, gen_logits = model(batch)
        out.append(global_logits if gen_logits is None else gen_logits)
    return torch.cat(out)


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


def adaptation_ms(
    model: DeviceModel, samples: Samples, method: str, cfg: FinetuneConfig, repeats: int = 5
) -> float:
    """Wall time to adapt one session's classifier, the paper's "time delay" (Table 1).

    finetune: k gradient steps on this CPU; generated methods: one PPG forward for one
    device (the cloud's service time, transfer excluded); base: nothing to adapt.
    """
    if method == "base":
        return 0.0
    session = samples.session[:1]
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        if method == "finetune":
            finetune_params(model, samples, session, cfg)
        else:
            with torch.no_grad():
                model.session_params(samples.index(torch.tensor([0])))
        timings.append(time.perf_counter() - start)
    return 1000 * sorted(timings)[len(timings) // 2]


def evaluate(
    model: DeviceModel, samples: Samples, method: str, finetune: FinetuneConfig | None = None
) -> dict[str, float]:
    """Metrics of ``method`` on ``samples`` (``finetune`` reuses a base-trained model)."""
    ft = finetune or FinetuneConfig()
    logits = (
        predict_finetuned(model, samples, ft) if method == "finetune" else predict(model, samples)
    )
    if isinstance(samples, ClickSamples):
        metrics = click_metrics(logits, samples.label, samples.session, samples.user, samples.group)
    else:
        metrics = image_metrics(logits, samples.label, samples.session, samples.user)
    metrics["latency_ms"] = adaptation_ms(model, samples, method, ft)
    return metrics
