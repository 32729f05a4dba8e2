"""The fine-tuning baselines.

`finetune`: per session, k gradient steps on a copy of the global classifier using the
session's labelled real-time samples (the paper's "LR*" column, which needs labels).

`finetune-user`: per user, the whole trained base model fine-tuned on that user's labelled
training rows, then scored on the user's evaluation rows: the baseline of the authors'
public code (``code/main/multi_metric_vanilla_finetune_train.py``: a deep copy of the base
checkpoint per user, Adam lr 1e-3 on every parameter, ``--max_epoch`` 1, batch 1024).

Sessions are fine-tuned together as one stacked parameter tensor: the loss is a sum of
per-session losses over disjoint parameters, so each session's gradient, and Adam's
element-wise update, are exactly those of fine-tuning it alone.

Notation used for tensor shapes: U sessions, R real-time samples, L history length,
M fine-tuning rows per session, F feature dim, E embed dim.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from duet.adaptation import FinetuneConfig, UserFinetuneConfig
from duet.data import ClickSamples, ImageSamples, Samples, iterate_batches
from duet.dynamic import Params
from duet.evaluate import predict
from duet.losses import row_loss
from duet.model import DeviceModel


def session_negatives(sessions: Tensor, count: int, num_items: int, seed: int) -> Tensor:
    """(U, count) items in 1..num_items, a pure function of (session id, slot, seed).

    A device samples its own negatives, so they must not depend on which other sessions
    share the batch: a Park-Miller (minstd) hash per slot instead of a shared RNG stream.
    """
    m = 2**31 - 1
    slot = torch.arange(count)
    x = (sessions[:, None] * 7919 + slot[None] * 104729 + seed * 15485863 + 1) % m
    for _ in range(3):
        x = x * 48271 % m  # x < 2^31 and 48271 < 2^16: the product fits in int64
    return x % num_items + 1


def click_finetune_rows(
    realtime: Tensor, sessions: Tensor, history_length: int, num_items: int, cfg: FinetuneConfig
):
    """Labelled rows from real-time clicks: each click (j >= 1) is a positive whose history
    is the clicks before it, plus ``cfg.negatives`` sampled items.

    Returns history (U, M, L), target (U, M), label (U, M), valid (U, M).
    """
    U, R = realtime.shape
    hist = torch.zeros(U, R - 1, history_length, dtype=torch.long)
    for j in range(1, R):  # R is small (real-time window), U is vectorized
        take = min(j, history_length)
        hist[:, j - 1, history_length - take :] = realtime[:, j - take : j]
    pos = realtime[:, 1:]  # (U, R-1)
    neg = session_negatives(sessions, (R - 1) * cfg.negatives, num_items, cfg.seed).view(
        U, R - 1, -1
    )
    target = torch.cat([pos[..., None], neg], dim=2).flatten(1)  # (U, M)
    label = torch.zeros_like(target, dtype=torch.float)
    label.view(U, R - 1, -1)[..., 0] = 1.0
    history = hist.repeat_interleave(cfg.negatives + 1, dim=1)
    valid = (pos != 0).repeat_interleave(cfg.negatives + 1, dim=1)
    return history, target, label, valid


def _features(
    model: DeviceModel,
    s: ClickSamples | ImageSamples,
    sessions: Tensor,
    cfg: FinetuneConfig,
    keys: Tensor,
):
    """Frozen-backbone features of each session's labelled real-time samples."""
    if isinstance(s, ClickSamples):
        seq = model.cfg.sequence
        assert seq is not None
        history, target, label, valid = click_finetune_rows(
            s.realtime[sessions], keys, seq.history_length, seq.num_items, cfg
        )
        U, M, L = history.shape
        # a positive and its negatives share one history: encoded once (5x fewer encodings)
        group = torch.arange(U * M) // (cfg.negatives + 1)
        feat, temb = model.backbone(history.view(U * M, L), target.view(U * M), group)
        return feat.view(U, M, -1), temb.view(U, M, -1), label, valid
    # images: the real-time sample is the session's first frame, labelled like its row
    first = s.position == 0
    label_of = torch.full((len(s.realtime),), -1, dtype=torch.long)
    label_of[s.session[first]] = s.label[first]
    label = label_of[sessions][:, None]  # (U, 1)
    feat = model.backbone(s.realtime[sessions])[:, None]  # (U, 1, F)
    return feat, None, label, label >= 0


def finetune_params(
    model: DeviceModel,
    s: ClickSamples | ImageSamples,
    sessions: Tensor,
    cfg: FinetuneConfig,
    keys: Tensor | None = None,
) -> Params:
    """Fine-tuned classifier parameters for each of ``sessions`` (U rows of ``s.realtime``).

    ``keys`` (U,) name the sessions for their sampled negatives (default: ``sessions``).
    A caller whose ``sessions`` are slots in a batch, as the fleet's are, passes a stable
    identity: otherwise a session's negatives, and so its fine-tuned classifier, would
    depend on which other sessions shared its batch.
    """
    model.eval()
    with torch.no_grad():
        feat, temb, label, valid = _features(
            model, s, sessions, cfg, sessions if keys is None else keys
        )
    U = len(sessions)
    params = [
        (w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
        for w, b in model.classifier.params(U)
    ]
    leaves = [t for pair in params for t in pair]
    opt = torch.optim.Adam(leaves, lr=cfg.lr)
    weight = valid.float() / valid.float().sum(1, keepdim=True).clamp(min=1)  # per-session mean
    for _ in range(cfg.steps):
        logits = model.score(feat, temb, params)
        if temb is not None:
            per_row = F.binary_cross_entropy_with_logits(logits, label, reduction="none")
        else:
            per_row = F.cross_entropy(logits.transpose(1, 2), label.clamp(min=0), reduction="none")
        loss = (per_row * weight).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [(w.detach(), b.detach()) for w, b in params]


def user_adapted(
    model: DeviceModel,
    history: ClickSamples | ImageSamples,
    users: Tensor,
    cfg: UserFinetuneConfig,
) -> Iterator[tuple[int, DeviceModel]]:
    """Yield ``(user, model)`` with ``model`` fine-tuned on that user's rows of ``history``
    (every parameter), each user from the trained base weights; ``model`` is restored after.

    It is the same module, re-tuned in place for each user: use it before the next one.
    A user with no rows in ``history`` gets the base model unchanged, as in the authors'
    code. Each user's batch order and dropout draw from a stream of their own, so a user's
    adapted model does not depend on which other users were adapted before.
    """
    start = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        for user in users.tolist():
            model.load_state_dict(start)
            own = (history.user == user).nonzero().squeeze(1)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed * 1_000_003 + user)
                _finetune_on(model, history.index(own), cfg)
            yield user, model.eval()
    finally:
        model.load_state_dict(start)
        model.eval()


def finetune_user_logits(
    model: DeviceModel,
    history: ClickSamples | ImageSamples,
    samples: ClickSamples | ImageSamples,
    cfg: UserFinetuneConfig,
    users: Tensor | None = None,
) -> Tensor:
    """Logits of ``samples`` (in row order) from the per-user fine-tuned models of
    :func:`user_adapted`; ``users`` narrows the loop (the latency measurement times one)."""
    logits: Tensor | None = None
    users = samples.user.unique() if users is None else users
    for user, tuned in user_adapted(model, history, users, cfg):
        rows = (samples.user == user).nonzero().squeeze(1)
        user_logits = predict(tuned, samples.index(rows))
        if logits is None:
            logits = torch.zeros(len(samples), *user_logits.shape[1:])
        logits[rows] = user_logits
    assert logits is not None, "no users to evaluate"
    return logits


def _finetune_on(model: DeviceModel, rows: ClickSamples | ImageSamples, cfg: UserFinetuneConfig):
    """``cfg.epochs`` Adam epochs over ``rows`` on every parameter of ``model``, in place."""
    if not len(rows):
        return
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for _ in range(cfg.epochs):
        for batch in iterate_batches(rows, cfg.batch_size, shuffle=True):
            loss = row_loss(model(batch)[0], batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def finetuned_logits(
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
