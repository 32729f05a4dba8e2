"""Recorded sessions a simulated device replays, and the scored samples built from them.

A fleet reads its users' test sessions once into
`ClickReplay` / `ImageReplay` objects. Each holds the shiftable part (a `ClickSession` or
`ImageSession` of pipelines/shifts.py) and what scoring needs besides: for clicks the clicks
before the session and each position's sampled negatives; for images nothing more.

Scored rows are rebuilt from the (possibly shifted) session rather than read from
``test.parquet``, so a shift reaches every place the device sees it: the real-time samples it
uploads and the histories it scores with. Unshifted, the rebuilt rows equal the prepared
ones (tested). Under a shift only the session's clicks and its real-time window (the R most
recent clicks before it) change; older history stays the device's own.

Notation used for tensor shapes: U sessions in a batch, T positions (clicks or frames) of a
session, k negatives per positive, L history length, R real-time samples, B scored rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc
import torch

from duet.data import ClickSamples, ImageSamples
from pipelines.shifts import ClickSession, ImageSession
from pipelines.tensors import fixed_to_numpy, load_meta


@dataclass(frozen=True)
class ClickReplay:
    """One recorded click session: ``session`` is shiftable; ``pre_history`` (L,) are the
    clicks before it and ``negatives`` (T, k) each position's sampled negatives."""

    session: ClickSession
    source_session: int
    pre_history: np.ndarray
    negatives: np.ndarray


@dataclass(frozen=True)
class ImageReplay:
    """One recorded video; ``session`` (frames, labels) is shiftable, frame 0 is uploaded."""

    session: ImageSession
    source_session: int


Replay = ClickReplay | ImageReplay
NOT_SCORED = -1.0  # the label of a candidate row left out of a session's metrics
# reads the recorded sessions of some users (sorted ids): by user, in session order
ReplaySource = Callable[[Sequence[int]], Mapping[int, Sequence[Replay]]]


def in_memory(replays: Mapping[int, Sequence[Replay]]) -> ReplaySource:
    """A `ReplaySource` over replays already loaded (tests, small fleets)."""
    return lambda users: {u: replays[u] for u in users if u in replays}


def replayable_users(prepared_dir: str | Path, split: str = "test") -> np.ndarray:
    """Sorted ids of users with at least one session of ``split`` (the devices' templates)."""
    from pipelines.tensors import read_table

    table = read_table(Path(prepared_dir) / "sessions.parquet", ["user", "split"])
    users = table.filter(pc.equal(table["split"], split))["user"].to_numpy()
    return np.unique(users)


def recorded_starts(prepared_dir: str | Path, split: str = "test") -> dict[int, np.ndarray] | None:
    """Per user, the recorded start times (``start_ts``, seconds) of its ``split`` sessions in
    the order a device replays them; None for data without timestamps (images)."""
    import pyarrow.parquet as pq

    from pipelines.tensors import read_table

    path = Path(prepared_dir) / "sessions.parquet"
    if "start_ts" not in pq.read_schema(path).names:
        return None
    table = pl.from_arrow(read_table(path, ["user", "session_index", "split", "start_ts"]))
    mine = table.filter(pl.col("split") == split).sort("user", "session_index")
    return {
        int(user): part["start_ts"].to_numpy().astype(np.float64)
        for (user,), part in mine.partition_by("user", as_dict=True, maintain_order=True).items()
    }


def load_replays(
    prepared_dir: str | Path, users: Sequence[int], split: str = "test"
) -> dict[int, list[Replay]]:
    """The ``split`` sessions of ``users``, per user in session order.

    Reads with pyarrow and a pushed-down user filter, not Ray Data: a fleet's slice is a
    few MB, and a Ray Data read costs seconds of startup and extra worker processes per
    dataset (measured 34-71 s per read on the shared 2-core box, vs 0.13 s here).
    """
    meta = load_meta(prepared_dir)
    wanted = sorted({int(u) for u in users})
    sessions = _read(prepared_dir, "sessions", wanted, split)
    rows = _read(prepared_dir, split, wanted, None)
    replays: list[Replay]
    if meta["kind"] == "clicks":
        replays = list(_click_replays(sessions, rows))
    else:
        replays = list(
            _image_replays(sessions, rows, (meta["channels"], meta["height"], meta["width"]))
        )
    by_user: dict[int, list[Replay]] = {}
    for r in sorted(replays, key=lambda r: (r.session.user, r.session.index)):
        by_user.setdefault(r.session.user, []).append(r)
    return by_user


def _read(prepared_dir: str | Path, name: str, users: list[int], split: str | None) -> pl.DataFrame:
    import pyarrow.dataset as pads

    from pipelines.errors import DataError
    from pipelines.tensors import read_table

    path = Path(prepared_dir) / f"{name}.parquet"
    if not path.is_file():
        raise DataError(path, "not found; run `duet-sim data prepare` first")
    user = pads.field("user")
    # the range lets Parquet skip row groups by their statistics (a large population's
    # files hold a row group per chunk of users); isin alone reads every one
    predicate = (user >= users[0]) & (user <= users[-1]) & user.isin(users)
    if split is not None:
        predicate = predicate & (pads.field("split") == split)
    return pl.from_arrow(read_table(path, filters=predicate))  # type: ignore[return-value]


def _click_replays(sessions: pl.DataFrame, rows: pl.DataFrame) -> list[ClickReplay]:
    if sessions.is_empty():
        return []
    rows = rows.sort("session", "position")
    by_session = rows.partition_by("session", as_dict=True, maintain_order=True)
    out = []
    for sid, user, index, items, realtime in sessions.select(
        "session", "user", "session_index", "items", "realtime"
    ).iter_rows():
        part = by_session[(sid,)]
        negatives = fixed_to_numpy(part["negatives"].to_arrow()).astype(np.int64)
        first_history = np.asarray(part["history"][0], dtype=np.int64)
        session = ClickSession(
            int(user),
            int(index),
            np.asarray(items, dtype=np.int64),
            np.asarray(realtime, dtype=np.int64),
        )
        out.append(ClickReplay(session, int(sid), first_history, negatives))
    return out


def _image_replays(
    sessions: pl.DataFrame, rows: pl.DataFrame, shape: tuple[int, int, int]
) -> list[ImageReplay]:
    if sessions.is_empty():
        return []
    rows = rows.sort("session", "position")
    by_session = rows.partition_by("session", as_dict=True, maintain_order=True)
    out = []
    for sid, user, index in sessions.select("session", "user", "session_index").iter_rows():
        part = by_session[(sid,)]
        pixels = fixed_to_numpy(part["pixels"].to_arrow()).reshape(-1, *shape)
        labels = part["label"].to_numpy().astype(np.int64)
        session = ImageSession(int(user), int(index), pixels, labels, int(labels.max()))
        out.append(ImageReplay(session, int(sid)))
    return out


# ---- scored samples ------------------------------------------------------------------------
def click_rows(replay: ClickReplay, session: ClickSession) -> tuple[np.ndarray, ...]:
    """Scored rows of one (shifted) session: history (T, L), candidates (T, 1+k), valid (T, 1+k).

    Candidate 0 of each position is the clicked item (label 1), the rest its negatives;
    a negative equal to the clicked item (a shift can move clicks onto one) is not valid.
    """
    L, R = len(replay.pre_history), len(session.realtime)
    pre = replay.pre_history.copy()
    keep = min(L, R)
    pre[L - keep :] = session.realtime[R - keep :]  # the real-time window is the latest history
    T = len(session.items)
    seq = np.concatenate([pre, session.items])  # (L + T,)
    history = np.lib.stride_tricks.sliding_window_view(seq, L)[:T]  # history_t = seq[t : t+L]
    negatives = replay.negatives[:T]
    candidates = np.concatenate([session.items[:, None], negatives], axis=1)  # (T, 1+k)
    valid = np.ones(candidates.shape, dtype=bool)
    valid[:, 1:] = negatives != session.items[:, None]
    return history, candidates, valid


def click_samples(replays: Sequence[ClickReplay], sessions: Sequence[ClickSession]) -> ClickSamples:
    """Stack U sessions' scored rows into one `ClickSamples`; ``session`` is the local index u.

    Every candidate of every position is a row, so a session of T positions has T(1+k) rows
    whatever a shift did, and a batch of equal sessions is one (U, T(1+k)) block that
    `DeviceModel.score_grouped` scores without padding. A negative that equals the clicked
    item (a shift can move a click onto one) is not scored: its label is
    :data:`NOT_SCORED`, and `session_scores` leaves it out. One history per position is
    stored (``history_of``), shared by its candidates.
    """
    parts = [click_rows(r, s) for r, s in zip(replays, sessions, strict=True)]
    hist, target, label, session, position = [], [], [], [], []
    for u, (history, candidates, valid) in enumerate(parts):
        T, C = candidates.shape
        hist.append(history)
        target.append(candidates.ravel())
        labels = np.zeros((T, C), np.float32)
        labels[:, 0] = 1.0
        labels[~valid] = NOT_SCORED
        label.append(labels.ravel())
        session.append(np.full(T * C, u))
        position.append(np.repeat(np.arange(T), C))
    cat = lambda xs: torch.from_numpy(np.concatenate(xs).astype(np.int64))  # noqa: E731
    sess, pos = cat(session), cat(position)
    starts = np.cumsum([0] + [len(h) for h in hist[:-1]])  # each session's first position
    group = torch.from_numpy(starts)[sess] + pos  # one group per (session, position)
    return ClickSamples(
        history=cat(hist),
        target=cat(target),
        label=torch.from_numpy(np.concatenate(label)),
        session=sess,
        user=torch.tensor([s.user for s in sessions])[sess],
        group=group,
        position=pos,
        realtime=torch.from_numpy(np.stack([s.realtime for s in sessions])),
        history_of=group,
    )


def image_samples(sessions: Sequence[ImageSession]) -> ImageSamples:
    """Stack U videos' frames into one `ImageSamples`; ``session`` is the local index u."""
    counts = [len(s.labels) for s in sessions]
    sess = torch.repeat_interleave(torch.arange(len(sessions)), torch.tensor(counts))
    pixels = torch.from_numpy(np.concatenate([s.pixels for s in sessions])).float() / 255.0
    return ImageSamples(
        pixels=pixels,
        label=torch.from_numpy(np.concatenate([s.labels for s in sessions])),
        session=sess,
        user=torch.tensor([s.user for s in sessions])[sess],
        position=torch.cat([torch.arange(n) for n in counts]),
        realtime=torch.from_numpy(np.stack([s.pixels[0] for s in sessions])).float() / 255.0,
    )


def build_samples(replays: Sequence[Replay], sessions: Sequence) -> ClickSamples | ImageSamples:
    """Scored samples of a batch of (shifted) sessions, whatever the dataset kind."""
    if replays and isinstance(replays[0], ClickReplay):
        return click_samples(replays, sessions)  # type: ignore[arg-type]
    return image_samples(sessions)
