"""Distribution-shift operators a fleet simulator applies to a device's upcoming sessions.

An operator is a frozen dataclass subclassing :class:`ShiftOperator`, registered by name
(``type: genre_shift``) in :data:`SHIFTS` (duet/registry.py's shape: a plugin registers its
own); its YAML kwargs are bound to the class signature by :func:`build_shift`
and checked at construction. ``op.apply(session, rng, ctx)`` returns a new session and
never mutates its input.

What they operate on:
    * clicks: a :class:`ClickSession`, the session's clicks to be scored (``items``) and its
      real-time samples (``realtime``, left-padded with 0). Operators change ``items`` and,
      unless ``realtime=False``, ``realtime`` the same way: under a sustained shift the
      device's most recent clicks come from the shifted distribution too.
    * images: an :class:`ImageSession`, uint8 frames (F, C, H, W); frame 0 is the
      real-time sample, so pixel operators shift it with the rest.
    * runtime data (item genres and popularity, other devices' sessions for swaps) comes in
      a :class:`ShiftContext`, never from YAML; :func:`click_context` and
      :func:`image_context` build it from a prepared directory.

Determinism: :func:`session_rng` seeds one generator per (seed, device, session index), so a
session's shift does not depend on which other sessions or devices were processed first.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from duet.registry import Registry

# -- sessions and context --------------------------------------------------------------------


@dataclass(frozen=True)
class ClickSession:
    """One upcoming click session of a device: ``items`` (T,) and ``realtime`` (R,), 0 = pad."""

    user: int
    index: int
    items: np.ndarray
    realtime: np.ndarray


@dataclass(frozen=True)
class ImageSession:
    """One upcoming video of a device: ``pixels`` (F, C, H, W) uint8 and frame ``labels`` (F,)."""

    user: int
    index: int
    pixels: np.ndarray
    labels: np.ndarray
    label: int


@dataclass(frozen=True)
class ShiftContext:
    """Runtime data some operators need.

    Attributes:
        item_genres (np.ndarray | None): (N+1, G) bool, row i = genres of item i (row 0 pad).
        genre_names (tuple[str, ...]): names of the G genre columns.
        popularity (np.ndarray | None): (N+1,) train click counts.
        pool (Sequence): sessions of all devices, for user/subject swaps and label shifts.
    """

    item_genres: np.ndarray | None = None
    genre_names: tuple[str, ...] = ()
    popularity: np.ndarray | None = None
    pool: Sequence[ClickSession | ImageSession] = field(default_factory=tuple)

    @property
    def num_items(self) -> int:
        table = self.popularity if self.popularity is not None else self.item_genres
        if table is None:
            raise ValueError("this shift needs item data: pass ShiftContext(popularity=...)")
        return len(table) - 1


def _range(key: str, value: float, lo: float, hi: float, *, open_lo: bool = False) -> None:
    """TypeError (not a number) or ValueError (out of range) quoting key, value and range."""
    bracket = "(" if open_lo else "["
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key}: expected number in {bracket}{lo}, {hi}], got {value!r}")
    if not ((lo < value if open_lo else lo <= value) and value <= hi):
        raise ValueError(f"{key}: expected number in {bracket}{lo}, {hi}], got {value!r}")


class ShiftOperator(ABC):
    """A shift operator: a frozen dataclass whose fields are its YAML parameters (checked at
    construction), registered by name in :data:`SHIFTS`.

    ``kind`` is the data it acts on ("clicks" or "images"; None: either), which the scenario
    schema checks against the dataset.
    """

    kind: ClassVar[str | None] = None

    @abstractmethod
    def apply(self, session, rng: np.random.Generator, ctx: ShiftContext):
        """A new session (never the input mutated), drawing only from ``rng``."""


SHIFTS: Registry[ShiftOperator] = Registry("shift operator", ShiftOperator, "pipelines.shifts")


# -- click operators -------------------------------------------------------------------------


def _replace_clicks(session: ClickSession, rate: float, draw, rng, realtime: bool) -> ClickSession:
    """Replace each click (and real-time sample) with prob ``rate`` by ``draw(rng, n)``."""

    def one(arr: np.ndarray, keep_pad: bool) -> np.ndarray:
        out = arr.copy()
        hit = (rng.random(arr.shape) < rate) & (arr != 0 if keep_pad else True)
        out[hit] = draw(rng, int(hit.sum()))
        return out

    items = one(session.items, keep_pad=False)
    rt = one(session.realtime, keep_pad=True) if realtime else session.realtime
    return replace(session, items=items, realtime=rt)


@SHIFTS.register("user_swap")
@dataclass(frozen=True)
class UserSwap(ShiftOperator):
    """The device starts behaving like another user: clicks and real-time samples are taken
    from a random other user's session in the pool (with probability ``prob``)."""

    prob: float = 1.0
    kind = "clicks"

    def __post_init__(self) -> None:
        _range("prob", self.prob, 0, 1, open_lo=True)

    def apply(self, session, rng: np.random.Generator, ctx: ShiftContext):
        others = [s for s in ctx.pool if s.user != session.user]
        if not others:
            raise ValueError("user_swap: the context pool has no other device's session")
        if rng.random() >= self.prob:
            return session
        donor = others[int(rng.integers(len(others)))]
        return _swap(session, donor)


def _swap(session, donor):
    if isinstance(session, ClickSession):
        return replace(session, items=donor.items.copy(), realtime=donor.realtime.copy())
    return replace(
        session, pixels=donor.pixels.copy(), labels=donor.labels.copy(), label=donor.label
    )


@SHIFTS.register("genre_shift")
@dataclass(frozen=True)
class GenreShift(ShiftOperator):
    """Interest moves to one genre: each click becomes, with prob ``fraction``, a
    popularity-weighted item of ``genre``. ``genre=None`` draws one genre per device (fixed
    across its sessions, from the device id)."""

    genre: str | None = None
    fraction: float = 0.5
    realtime: bool = True
    kind = "clicks"

    def __post_init__(self) -> None:
        _range("fraction", self.fraction, 0, 1, open_lo=True)

    def apply(self, session: ClickSession, rng: np.random.Generator, ctx: ShiftContext):
        if ctx.item_genres is None:
            raise ValueError("genre_shift needs ShiftContext.item_genres")
        if self.genre is None:
            column = int(np.random.default_rng([session.user, 7]).integers(len(ctx.genre_names)))
        elif self.genre in ctx.genre_names:
            column = ctx.genre_names.index(self.genre)
        else:
            raise ValueError(f"genre: expected one of {list(ctx.genre_names)}, got {self.genre!r}")
        members = np.flatnonzero(ctx.item_genres[:, column])
        weights = (
            (ctx.popularity[members] + 1.0) if ctx.popularity is not None else np.ones(len(members))
        )
        draw = lambda g, n: g.choice(members, size=n, p=weights / weights.sum())  # noqa: E731
        return _replace_clicks(session, self.fraction, draw, rng, self.realtime)


@SHIFTS.register("popularity_shift")
@dataclass(frozen=True)
class PopularityShift(ShiftOperator):
    """Clicks drift to the head (``alpha > 0``) or the long tail (``alpha < 0``): each click
    becomes, with prob ``fraction``, an item drawn ∝ (popularity + 1)^alpha."""

    alpha: float = 1.0
    fraction: float = 0.5
    realtime: bool = True
    kind = "clicks"

    def __post_init__(self) -> None:
        _range("alpha", self.alpha, -5, 5)
        _range("fraction", self.fraction, 0, 1, open_lo=True)

    def apply(self, session: ClickSession, rng: np.random.Generator, ctx: ShiftContext):
        if ctx.popularity is None:
            raise ValueError("popularity_shift needs ShiftContext.popularity")
        weights = (ctx.popularity[1:].astype(np.float64) + 1.0) ** self.alpha
        p = weights / weights.sum()
        draw = lambda g, n: g.choice(len(p), size=n, p=p) + 1  # noqa: E731
        return _replace_clicks(session, self.fraction, draw, rng, self.realtime)


@SHIFTS.register("click_noise")
@dataclass(frozen=True)
class ClickNoise(ShiftOperator):
    """Accidental clicks: each click becomes a uniformly random item with prob ``rate``."""

    rate: float = 0.2
    realtime: bool = True
    kind = "clicks"

    def __post_init__(self) -> None:
        _range("rate", self.rate, 0, 1, open_lo=True)

    def apply(self, session: ClickSession, rng: np.random.Generator, ctx: ShiftContext):
        n = ctx.num_items
        draw = lambda g, k: g.integers(1, n + 1, size=k)  # noqa: E731
        return _replace_clicks(session, self.rate, draw, rng, self.realtime)


@SHIFTS.register("temporal_reversal")
@dataclass(frozen=True)
class TemporalReversal(ShiftOperator):
    """The session is replayed in reverse order (sequence models see a new order, the
    item histogram stays the same)."""

    realtime: bool = True
    kind = "clicks"

    def apply(self, session: ClickSession, rng: np.random.Generator, ctx: ShiftContext):
        rt = session.realtime
        if self.realtime:
            pad = int((rt == 0).sum())
            rt = np.concatenate([rt[:pad], rt[pad:][::-1]])  # keep the left padding left
        return replace(session, items=session.items[::-1].copy(), realtime=rt)


# -- image operators -------------------------------------------------------------------------


def _pixels(session: ImageSession, fn) -> ImageSession:
    """Apply ``fn`` to the frames as float in [0, 1]; clip and round back to uint8."""
    x = session.pixels.astype(np.float64) / 255.0
    out = np.clip(np.rint(fn(x) * 255.0), 0, 255).astype(np.uint8)
    return replace(session, pixels=out)


@SHIFTS.register("brightness_contrast")
@dataclass(frozen=True)
class BrightnessContrast(ShiftOperator):
    """Lighting change: ``x' = (x - 0.5) * contrast + 0.5 + brightness``."""

    brightness: float = 0.2
    contrast: float = 1.0
    kind = "images"

    def __post_init__(self) -> None:
        _range("brightness", self.brightness, -1, 1)
        _range("contrast", self.contrast, 0, 4, open_lo=True)

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        return _pixels(session, lambda x: (x - 0.5) * self.contrast + 0.5 + self.brightness)


@SHIFTS.register("gaussian_noise")
@dataclass(frozen=True)
class GaussianNoise(ShiftOperator):
    """Sensor noise: add N(0, std²) per pixel (pixel units in [0, 1])."""

    std: float = 0.1
    kind = "images"

    def __post_init__(self) -> None:
        _range("std", self.std, 0, 1, open_lo=True)

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        return _pixels(session, lambda x: x + rng.normal(0.0, self.std, size=x.shape))


def _blur_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    pad = len(kernel) // 2
    widths = [(0, 0)] * x.ndim
    widths[axis] = (pad, pad)
    padded = np.pad(x, widths, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=axis)
    return windows @ kernel


@SHIFTS.register("blur")
@dataclass(frozen=True)
class Blur(ShiftOperator):
    """Out-of-focus camera: separable Gaussian blur with ``sigma`` pixels."""

    sigma: float = 1.5
    kind = "images"

    def __post_init__(self) -> None:
        _range("sigma", self.sigma, 0, 10, open_lo=True)

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        radius = max(1, int(np.ceil(3 * self.sigma)))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / self.sigma) ** 2)
        kernel /= kernel.sum()
        return _pixels(session, lambda x: _blur_axis(_blur_axis(x, kernel, -1), kernel, -2))


@SHIFTS.register("occlusion")
@dataclass(frozen=True)
class Occlusion(ShiftOperator):
    """Something covers the camera: a square of side ``size`` × image side, filled with
    ``value``, at one random place per session (same place in every frame)."""

    size: float = 0.3
    value: float = 0.0
    kind = "images"

    def __post_init__(self) -> None:
        _range("size", self.size, 0, 1, open_lo=True)
        _range("value", self.value, 0, 1)

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        h, w = session.pixels.shape[-2:]
        side_h, side_w = max(1, round(self.size * h)), max(1, round(self.size * w))
        top, left = int(rng.integers(0, h - side_h + 1)), int(rng.integers(0, w - side_w + 1))

        def cover(x: np.ndarray) -> np.ndarray:
            x = x.copy()
            x[..., top : top + side_h, left : left + side_w] = self.value
            return x

        return _pixels(session, cover)


@SHIFTS.register("rotation")
@dataclass(frozen=True)
class Rotation(ShiftOperator):
    """Tilted camera: rotate every frame by ``degrees`` (bilinear, edges filled black)."""

    degrees: float = 15.0
    kind = "images"

    def __post_init__(self) -> None:
        _range("degrees", self.degrees, -180, 180)

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        from PIL import Image

        f, c, h, w = session.pixels.shape
        planes = session.pixels.reshape(f * c, h, w)
        rotated = [
            np.asarray(Image.fromarray(p).rotate(self.degrees, Image.Resampling.BILINEAR))
            for p in planes
        ]
        return replace(session, pixels=np.stack(rotated).reshape(f, c, h, w))


@SHIFTS.register("subject_swap")
@dataclass(frozen=True)
class SubjectSwap(UserSwap):
    """Another person uses the device: the video is replaced by another subject's video."""

    kind = "images"


@SHIFTS.register("label_distribution_shift")
@dataclass(frozen=True)
class LabelDistributionShift(ShiftOperator):
    """The mix of classes changes: with prob ``prob`` the video is replaced by a pool video
    whose class is drawn from ``weights`` (one non-negative weight per class)."""

    weights: tuple[float, ...] = ()
    prob: float = 1.0
    kind = "images"

    def __post_init__(self) -> None:
        _range("prob", self.prob, 0, 1, open_lo=True)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0 or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights: expected a non-empty list of weights >= 0 with a "
                f"positive sum, got {self.weights!r}"
            )

    def apply(self, session: ImageSession, rng: np.random.Generator, ctx: ShiftContext):
        if rng.random() >= self.prob:
            return session
        w = np.asarray(self.weights, dtype=np.float64)
        by_label = {c: [s for s in ctx.pool if s.label == c] for c in range(len(w))}
        w = np.where([len(by_label[c]) > 0 for c in range(len(w))], w, 0.0)
        if w.sum() == 0:
            raise ValueError("label_distribution_shift: the pool has no video of a weighted class")
        donors = by_label[int(rng.choice(len(w), p=w / w.sum()))]
        return _swap(session, donors[int(rng.integers(len(donors)))])


# -- registry, composition, application ------------------------------------------------------


@dataclass(frozen=True)
class Compose:
    """Apply ``shifts`` in order (each gets the same generator, advancing it)."""

    shifts: tuple = ()

    def apply(self, session, rng: np.random.Generator, ctx: ShiftContext):
        for shift in self.shifts:
            session = shift.apply(session, rng, ctx)
        return session


def build_shift(spec: Mapping):
    """Build one operator from ``{"type": key, **kwargs}`` (or a list of them -> Compose).

    Raises:
        ValueError: unknown ``type`` (listing the accepted keys) or a value out of range.
        TypeError: a kwarg the operator does not take (listing the ones it does).
    """
    if isinstance(spec, list | tuple):
        return Compose(tuple(build_shift(s) for s in spec))
    spec = dict(spec)
    key = spec.pop("type", None)
    cls = SHIFTS[key]  # unknown: RegistryError, listing the registered operators
    if "weights" in spec and isinstance(spec["weights"], list):
        spec["weights"] = tuple(spec["weights"])
    try:
        inspect.signature(cls).bind(**spec)
    except TypeError as exc:
        accepted = list(inspect.signature(cls).parameters)
        raise TypeError(f"{key}: {exc}; accepted parameters: {accepted}") from None
    return cls(**spec)


def session_rng(seed: int, user: int, index: int) -> np.random.Generator:
    """The generator for one (device, session): independent of processing order."""
    return np.random.default_rng([seed, user, index])


# -- contexts from a prepared directory ------------------------------------------------------


def click_context(prepared_dir: str | Path) -> tuple[ShiftContext, list[ClickSession]]:
    """Item genres and popularity from ``items.parquet``; every session as the swap pool."""
    import polars as pl

    from pipelines.tensors import read_table

    items = pl.DataFrame(read_table(Path(prepared_dir) / "items.parquet"))
    names = tuple(sorted({g for gs in items["genres"].to_list() for g in gs}))
    genres = np.zeros((items["item"].max() + 1, len(names)), dtype=bool)
    col = {g: i for i, g in enumerate(names)}
    for item, gs in zip(items["item"].to_list(), items["genres"].to_list(), strict=True):
        genres[item, [col[g] for g in gs]] = True
    popularity = np.zeros(len(genres), dtype=np.int64)
    popularity[items["item"].to_numpy()] = items["popularity"].to_numpy()
    sessions = pl.DataFrame(read_table(Path(prepared_dir) / "sessions.parquet"))
    pool = [
        ClickSession(u, i, np.asarray(it, dtype=np.int64), np.asarray(rt, dtype=np.int64))
        for u, i, it, rt in sessions.select(
            "user", "session_index", "items", "realtime"
        ).iter_rows()
    ]
    return ShiftContext(genres, names, popularity, pool), pool


def image_context(
    prepared_dir: str | Path, split: str = "test"
) -> tuple[ShiftContext, list[ImageSession]]:
    """Every video of ``split`` as an :class:`ImageSession` (also the swap/label pool)."""
    from pipelines.tensors import fixed_to_numpy, load_meta, read_table

    meta = load_meta(prepared_dir)
    shape = (meta["channels"], meta["height"], meta["width"])
    frames = read_table(Path(prepared_dir) / f"{split}.parquet")
    pixels = fixed_to_numpy(frames["pixels"]).reshape(-1, *shape)
    session, user = frames["session"].to_numpy(), frames["user"].to_numpy()
    labels = frames["label"].to_numpy()
    sessions = read_table(Path(prepared_dir) / "sessions.parquet", ["session", "session_index"])
    index = dict(zip(*(sessions[c].to_numpy() for c in ("session", "session_index")), strict=True))
    pool = []
    for sid in np.unique(session):
        rows = np.flatnonzero(session == sid)
        pool.append(
            ImageSession(
                int(user[rows[0]]),
                int(index[sid]),
                pixels[rows],
                labels[rows],
                int(labels[rows].max()),
            )
        )
    return ShiftContext(pool=pool), pool
