"""In-memory sample tensors: the contract between pipelines/ (which builds them) and duet/.

Shapes: ``B`` samples, ``L`` history length, ``S`` sessions, ``R`` real-time samples per
session, ``C, H, W`` image channels/height/width.

Both kinds index their per-session real-time samples through ``session`` so that a
session's real-time tensor is stored once, however many rows the session has.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Protocol, Self

import torch
from torch import Tensor


def _index(samples, idx: Tensor):
    """Rows ``idx`` of every per-row field; shared tables are shared, not copied."""
    out = {}
    for f in fields(samples):
        value = getattr(samples, f.name)
        shared = f.name in samples.shared or value is None
        out[f.name] = value if shared else value[idx]
    return type(samples)(**out)


@dataclass
class ClickSamples:
    """Scored (target item, history) rows of a click dataset.

    Item id 0 is padding; real item ids are 1..num_items.

    Attributes:
        history (Tensor): (B, L) long, previous clicks, oldest first, left-padded with 0.
        target (Tensor): (B,) long, the candidate item.
        label (Tensor): (B,) float, 1 for the clicked item, 0 for a sampled negative.
        session (Tensor): (B,) long, row of ``realtime`` holding this sample's session.
        user (Tensor): (B,) long, dense device/user index.
        group (Tensor): (B,) long, one positive and its negatives share a group (ranking metrics).
        position (Tensor): (B,) long, t = position of the positive within its session (Eq. 7).
        realtime (Tensor): (S, R) long, per session the most recent clicks at its start,
            oldest first, left-padded with 0.
        history_of (Tensor | None): (B,) long. When given, ``history`` is a table (H, L)
            shared by the rows and row r's history is ``history[history_of[r]]``: a
            positive and its sampled negatives share one (the evaluation splits have 101
            rows per positive, so this stores their histories 101x smaller).
    """

    history: Tensor
    target: Tensor
    label: Tensor
    session: Tensor
    user: Tensor
    group: Tensor
    position: Tensor
    realtime: Tensor
    history_of: Tensor | None = None

    per_session = frozenset({"realtime"})

    @property
    def shared(self) -> frozenset[str]:
        """Fields every subset shares rather than indexes."""
        return self.per_session | ({"history"} if self.history_of is not None else set())

    def row_history(self) -> Tensor:
        """(B, L): every row's history (the table gathered for these rows only)."""
        return self.history if self.history_of is None else self.history[self.history_of]

    def __len__(self) -> int:
        return self.target.shape[0]

    def index(self, idx: Tensor) -> Self:
        return _index(self, idx)


@dataclass
class ImageSamples:
    """Frames of an image/video dataset (CK+, synthetic-video).

    Attributes:
        pixels (Tensor): (B, C, H, W) float in [0, 1].
        label (Tensor): (B,) long class index.
        session (Tensor): (B,) long, row of ``realtime`` holding this frame's session (video).
        user (Tensor): (B,) long, dense device/subject index.
        position (Tensor): (B,) long, frame position within its session.
        realtime (Tensor): (S, C, H, W) float, the first frame of each session.
    """

    pixels: Tensor
    label: Tensor
    session: Tensor
    user: Tensor
    position: Tensor
    realtime: Tensor

    per_session = frozenset({"realtime"})
    shared = per_session

    def __len__(self) -> int:
        return self.label.shape[0]

    def index(self, idx: Tensor) -> Self:
        return _index(self, idx)


Samples = ClickSamples | ImageSamples


def first_of_groups(inverse: Tensor) -> Tensor:
    """(G,) index of the first row of each group, for ``inverse`` (B,) group ids 0..G-1."""
    rows = torch.arange(len(inverse), device=inverse.device)
    first = torch.full_like(rows[: int(inverse.max()) + 1], len(inverse))
    return first.scatter_reduce(0, inverse, rows, "amin")


def iterate_batches(
    samples: Samples, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
):
    """Yield ``samples`` in batches of ``batch_size`` rows (last batch may be smaller).

    Click rows are shuffled by impression group, keeping a positive and its negatives
    together, so the backbone encodes their shared history once per batch.
    """
    n = len(samples)
    if not shuffle:
        order = torch.arange(n)
    elif isinstance(samples, ClickSamples):
        _, dense = samples.group.unique(return_inverse=True)
        rank = torch.randperm(int(dense.max()) + 1, generator=generator)[dense]
        order = torch.sort(rank, stable=True).indices
    else:
        order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield samples.index(order[start : start + batch_size])


class Feed(Protocol):
    """Training rows that are streamed rather than held (``pipelines.feeds.ParquetFeed``):
    what `duet.train` needs of them is their count and an epoch's batches."""

    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int) -> int: ...

    def batches(self, batch_size: int, *, shuffle: bool, seed: int | None = None) -> Iterator: ...


def num_batches(data: Samples | Feed, batch_size: int) -> int:
    """How many batches one epoch over ``data`` has."""
    if isinstance(data, ClickSamples | ImageSamples):
        return -(-len(data) // batch_size)
    return data.num_batches(batch_size)


def epoch_batches(
    data: Samples | Feed,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
) -> Iterator[Samples]:
    """One epoch's batches of samples in memory (`iterate_batches`) or of a feed, whose
    order is seeded by one draw from ``generator`` (so each epoch's order differs)."""
    if isinstance(data, ClickSamples | ImageSamples):
        yield from iterate_batches(data, batch_size, shuffle=shuffle, generator=generator)
        return
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator)) if shuffle else None
    yield from data.batches(batch_size, shuffle=shuffle, seed=seed)
