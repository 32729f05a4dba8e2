"""Vectorized sample construction: history/real-time windows and negative sampling.

Everything here works on the sorted interaction arrays from :mod:`pipelines.sessions`
with numpy, never a Python loop over rows, so 1M interactions take seconds.
"""

from __future__ import annotations

import numpy as np

from pipelines.errors import DataError

_CHUNK = 1 << 18  # rows per window chunk: bounds the (rows, width) int64 temporaries (~60 MB)


def windows(items: np.ndarray, user_start: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """For each end index e, the clicks ``items[max(start, e - width):e]``, left-padded with 0.

    Args:
        items (np.ndarray): (n,) item ids of all interactions, sorted by (user, ts, item).
        user_start (np.ndarray): (m,) index of the first interaction of each window's user.
        ends (np.ndarray): (m,) exclusive end index of each window (the target's own index
            for a history, the session's first index for real-time samples).
        width (int): window length (30 for history, R for real-time samples).

    Returns:
        np.ndarray: (m, width) int32, oldest first, left-padded with 0.
    """
    out = np.zeros((len(ends), width), dtype=np.int32)
    offsets = np.arange(-width, 0, dtype=np.int64)
    for lo in range(0, len(ends), _CHUNK):
        e, s = ends[lo : lo + _CHUNK], user_start[lo : lo + _CHUNK]
        cols = e[:, None] + offsets  # (m, width) absolute indices
        valid = cols >= s[:, None]
        out[lo : lo + _CHUNK] = np.where(valid, items[np.maximum(cols, 0)], 0)
    return out


def seen_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """Sorted unique ``user * (num_items + 1) + item`` keys: the set negatives must avoid."""
    return np.unique(users.astype(np.int64) * (num_items + 1) + items)


def _dup_mask(cand: np.ndarray) -> np.ndarray:
    """True at every repeat of a value earlier in its row (first occurrence stays)."""
    order = np.argsort(cand, axis=1, kind="stable")
    ordered = np.take_along_axis(cand, order, axis=1)
    dup_sorted = np.zeros_like(cand, dtype=bool)
    dup_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    mask = np.zeros_like(dup_sorted)
    np.put_along_axis(mask, order, dup_sorted, axis=1)
    return mask


def sample_negatives(
    rng: np.random.Generator, users: np.ndarray, seen: np.ndarray, num_items: int, k: int
) -> np.ndarray:
    """Draw ``k`` distinct items per row from those the row's user never interacted with.

    Rejection sampling, vectorized: draw uniformly from 1..num_items, then redraw only the
    rejected cells (seen by the user, or repeated in the row) until none are left. Rejection
    rate is the user's share of the catalogue, so a few passes suffice on MovieLens.

    Args:
        rng (np.random.Generator): the only randomness; same seed, same negatives.
        users (np.ndarray): (m,) dense user of each row.
        seen (np.ndarray): :func:`seen_keys` of all interactions (train and test).
        num_items (int): N; items are 1..N.
        k (int): negatives per row.

    Returns:
        np.ndarray: (m, k) int32.

    Raises:
        DataError: if some user has fewer than ``k`` unseen items.
    """
    counts = np.bincount(seen // (num_items + 1), minlength=int(users.max(initial=0)) + 1)
    if len(users) and (num_items - counts[users]).min() < k:
        worst = int(users[np.argmin(num_items - counts[users])])
        raise DataError(
            "<interactions>",
            f"user {worst} has fewer than {k} unseen items "
            f"of {num_items}; lower the negatives or apply a k-core filter",
        )
    cand = rng.integers(1, num_items + 1, size=(len(users), k), dtype=np.int64)
    rows = np.arange(len(users))
    while len(rows):
        sub = cand[rows]
        keys = users[rows, None].astype(np.int64) * (num_items + 1) + sub
        hit = np.searchsorted(seen, keys)
        bad = (seen[np.minimum(hit, len(seen) - 1)] == keys) | _dup_mask(sub)
        sub[bad] = rng.integers(1, num_items + 1, size=int(bad.sum()))
        cand[rows] = sub
        rows = rows[bad.any(axis=1)]
    return cand.astype(np.int32)
