"""Two built-in synthetic datasets that need no files: ``synthetic-clicks`` and ``synthetic-video``.

Both are built so that the real-time samples carry information the history lacks:
click interests drift between sessions, and every video device has a style that its
first frame reveals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.movielens import ITEMS_SCHEMA


def _check(config: object, rules: dict[str, tuple[float, float]]) -> None:
    """Raise ValueError quoting key, value and accepted range for the first field out of range."""
    for key, (lo, hi) in rules.items():
        value = getattr(config, key)
        if not lo <= value <= hi:
            raise ValueError(f"{key}: expected value in [{lo}, {hi}], got {value!r}")


# -- synthetic-clicks ------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticClicksConfig:
    """Knobs of ``synthetic-clicks``.

    Attributes:
        n_users (int): users (devices). Default: 150.
        n_items (int): items; item j belongs to cluster ``j % n_clusters``. Default: 960.
        n_clusters (int): latent interest clusters, exposed as the items' genre. Default: 24.
        sessions_per_user (int): sessions generated per user. Default: 16.
        clicks_per_session (int): clicks per session. Default: 10.
        p_stay (float): chance a session keeps the previous session's cluster. Default: 0.3.
        n_favorites (int): persistent favourite clusters per user. Default: 3.
        p_favorite (float): chance a new session's cluster is one of the user's favourites
            (else uniform). Default: 0.9.
        p_taste (float): chance a click comes from a random favourite instead of the
            session's cluster: a persistent taste that a long real-time window reveals and
            a short on-device history does not. Default: 0.4.
        p_focus (float): chance a click comes from the session's cluster (else uniform over
            all items). Default: 0.85.
        zipf_a (float): popularity skew inside a cluster, weight ∝ 1/(rank+1)^a. Default: 1.0.
        click_gap_s (int): seconds between clicks of a session. Default: 60.
        session_gap_s (int): seconds between sessions (>> click gap). Default: 86400.
    """

    n_users: int = 150
    n_items: int = 960
    n_clusters: int = 24
    sessions_per_user: int = 16
    clicks_per_session: int = 10
    p_stay: float = 0.3
    n_favorites: int = 3
    p_favorite: float = 0.9
    p_taste: float = 0.4
    p_focus: float = 0.85
    zipf_a: float = 1.0
    click_gap_s: int = 60
    session_gap_s: int = 86_400

    def __post_init__(self) -> None:
        big = 10**9
        _check(
            self,
            {
                "n_users": (1, big),
                "n_items": (2, big),
                "n_clusters": (1, self.n_items),
                "sessions_per_user": (1, big),
                "clicks_per_session": (1, big),
                "p_stay": (0, 1),
                "n_favorites": (1, self.n_clusters),
                "p_favorite": (0, 1),
                "p_taste": (0, 1),
                "p_focus": (0, 1),
                "zipf_a": (0, 10),
                "click_gap_s": (1, big),
                "session_gap_s": (1, big),
            },
        )


CHUNK_USERS = 10_000  # users generated (and prepared) at a time: bounds memory at any size


def user_favorites(rng: np.random.Generator, config: SyntheticClicksConfig, n: int) -> np.ndarray:
    """(n, n_favorites) distinct favourite clusters of n users."""
    return rng.random((n, config.n_clusters)).argsort(axis=1)[:, : config.n_favorites]


def _session_clusters(
    rng: np.random.Generator, config: SyntheticClicksConfig, u: int
) -> np.ndarray:
    """(u, S) cluster of each session: a Markov chain that stays with prob ``p_stay`` and
    otherwise moves to one of the user's favourites (prob ``p_favorite``) or anywhere."""
    s, k = config.sessions_per_user, config.n_clusters
    favorites = user_favorites(rng, config, u)

    def draw() -> np.ndarray:
        favorite = favorites[np.arange(u), rng.integers(0, config.n_favorites, size=u)]
        return np.where(rng.random(u) < config.p_favorite, favorite, rng.integers(0, k, size=u))

    clusters = np.empty((u, s), dtype=np.int64)
    clusters[:, 0] = draw()
    for j in range(1, s):  # loop over sessions (tens), vectorized over users
        stay = rng.random(u) < config.p_stay
        clusters[:, j] = np.where(stay, clusters[:, j - 1], draw())
    return clusters


def _cluster_items(
    rng: np.random.Generator, clusters: np.ndarray, config: SyntheticClicksConfig
) -> np.ndarray:
    """Popularity-skewed item of each click's cluster: rank r of cluster c is item r*K + c."""
    k, n = config.n_clusters, config.n_items
    out = np.empty_like(clusters)
    u = rng.random(clusters.shape)
    for c in range(k):  # loop over clusters (tens), vectorized over clicks
        size = (n - c + k - 1) // k
        cdf = np.cumsum(1.0 / np.arange(1, size + 1) ** config.zipf_a)
        mask = clusters == c
        ranks = np.searchsorted(cdf / cdf[-1], u[mask], side="right")
        out[mask] = np.minimum(ranks, size - 1) * k + c
    return out


def _users_clicks(
    key: list[int], config: SyntheticClicksConfig, u: int, first_user: int
) -> pl.DataFrame:
    """Interactions of users ``first_user + 1 .. first_user + u`` drawn from stream ``key``."""
    rng = np.random.default_rng(key)
    s, t = config.sessions_per_user, config.clicks_per_session
    session_cluster = _session_clusters(rng, config, u)
    click_cluster = np.repeat(session_cluster[:, :, None], t, axis=2)  # (U, S, T)
    favorites = user_favorites(np.random.default_rng(key), config, u)  # same draw as above
    taste = np.take_along_axis(
        favorites, rng.integers(0, config.n_favorites, size=(u, s * t)), axis=1
    )
    click_cluster = np.where(
        rng.random(click_cluster.shape) < config.p_taste, taste.reshape(u, s, t), click_cluster
    )
    focused = _cluster_items(rng, click_cluster, config)
    uniform = rng.integers(0, config.n_items, size=click_cluster.shape)
    items = np.where(rng.random(click_cluster.shape) < config.p_focus, focused, uniform)
    ts = np.arange(s)[:, None] * config.session_gap_s + np.arange(t)[None, :] * config.click_gap_s
    return pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(first_user + 1, first_user + u + 1), s * t),
            "item_id": items.ravel() + 1,
            "ts": np.broadcast_to(ts, (u, s, t)).ravel() + 1_000_000_000,
        },
        schema={"user_id": pl.Int64, "item_id": pl.Int64, "ts": pl.Int64},
    )


def synthetic_click_chunks(config: SyntheticClicksConfig, seed: int) -> Iterator[pl.DataFrame]:
    """Interactions ``CHUNK_USERS`` users at a time, in user order, for populations too big to
    hold (100,000 devices, each its own user). Chunk c draws from its own stream, so a user's
    clicks depend on the seed and its chunk only, and chunk 0 draws what a one-chunk
    population (the default 150 users) always has."""
    for c, first in enumerate(range(0, config.n_users, CHUNK_USERS)):
        key = [seed, 101] if c == 0 else [seed, 101, c]
        yield _users_clicks(key, config, min(CHUNK_USERS, config.n_users - first), first)


def synthetic_items(config: SyntheticClicksConfig) -> pl.DataFrame:
    """The item table (genre = ``cluster-XX``) like :func:`read_movielens`'s."""
    ids = np.arange(config.n_items)
    items_table = pa.table(
        [
            pa.array(ids + 1, pa.int64()),
            pa.array([f"item-{i + 1}" for i in ids]),
            pa.array([[f"cluster-{i % config.n_clusters:02d}"] for i in ids]),
        ],
        schema=ITEMS_SCHEMA,
    )
    return pl.from_arrow(items_table)  # type: ignore[return-value]


def synthetic_clicks(config: SyntheticClicksConfig, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every interaction at once, and the items: for populations that fit in memory."""
    return pl.concat(synthetic_click_chunks(config, seed)), synthetic_items(config)


# -- synthetic-video -------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticVideoConfig:
    """Knobs of ``synthetic-video``: striped patterns seen through per-device styles.

    Class c is a stripe pattern at angle ``180° * c / num_classes``. Each device draws one of
    ``n_styles`` styles; a style fixes a background texture (which the first frame reveals)
    and, unless ``permute`` is off, a class -> pattern permutation (style 0 is the identity),
    so a model that knows the device's style from its real-time frame classifies better.
    Each device also has its own brightness and contrast.

    Attributes:
        n_subjects (int): devices. Default: 40.
        sessions_per_subject (int): videos per device. Default: 8.
        frames_per_session (int): frames per video; frame 0 is the real-time sample. Default: 6.
        image_size (int): height = width. Default: 48.
        num_classes (int): classes (stripe orientations). Default: 4.
        n_styles (int): device styles. Default: 4.
        permute (bool): styles permute class -> pattern. Default: True.
        texture_amp (float): strength of a style's texture, in [0, 1] pixel units. Default: 0.25.
        brightness_range (float): per-device brightness offset ~ U(-b, b). Default: 0.15.
        contrast_range (float): per-device contrast ~ U(1-c, 1+c). Default: 0.3.
        noise_std (float): per-frame Gaussian noise. Default: 0.08.
        stripe_period (float): stripe period in pixels. Default: 8.0.
    """

    n_subjects: int = 40
    sessions_per_subject: int = 8
    frames_per_session: int = 6
    image_size: int = 48
    num_classes: int = 4
    n_styles: int = 4
    permute: bool = True
    texture_amp: float = 0.25
    brightness_range: float = 0.15
    contrast_range: float = 0.3
    noise_std: float = 0.08
    stripe_period: float = 8.0

    def __post_init__(self) -> None:
        big = 10**6
        _check(
            self,
            {
                "n_subjects": (1, big),
                "sessions_per_subject": (1, big),
                "frames_per_session": (1, 1000),
                "image_size": (8, 512),
                "num_classes": (2, 64),
                "n_styles": (1, 1000),
                "texture_amp": (0, 1),
                "brightness_range": (0, 1),
                "contrast_range": (0, 1),
                "noise_std": (0, 1),
                "stripe_period": (2, 1000),
            },
        )

    @property
    def class_names(self) -> list[str]:
        return [f"angle-{round(180 * c / self.num_classes)}" for c in range(self.num_classes)]


def _stripes(config: SyntheticVideoConfig, pattern: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """(n, H, W) float in [0, 1]: stripes at each pattern's angle, shifted by ``phase``."""
    size = config.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = np.pi * pattern / config.num_classes
    proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    return 0.5 + 0.5 * np.sin(2 * np.pi * proj / config.stripe_period + phase[:, None, None])


def _styles(
    rng: np.random.Generator, config: SyntheticVideoConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per style: a class -> pattern permutation (K,) and a smooth texture (H, W)."""
    k, size = config.num_classes, config.image_size
    perms = np.stack(
        [np.arange(k)]
        + [
            rng.permutation(k) if config.permute else np.arange(k)
            for _ in range(config.n_styles - 1)
        ]
    )
    coarse = rng.random((config.n_styles, 6, 6))
    reps = -(-size // 6)
    textures = np.kron(coarse, np.ones((reps, reps)))[:, :size, :size] - 0.5
    return perms, textures


def synthetic_video(config: SyntheticVideoConfig, seed: int) -> pl.DataFrame:
    """Generate frames: ``subject, sequence, position, label, pixels`` (uint8 H*W bytes).

    Returns the same frame table as :func:`pipelines.ckplus.read_ckplus`.
    """
    rng = np.random.default_rng([seed, 202])
    d, s, f = config.n_subjects, config.sessions_per_subject, config.frames_per_session
    perms, textures = _styles(rng, config)
    style = rng.integers(0, config.n_styles, size=d)
    brightness = rng.uniform(-config.brightness_range, config.brightness_range, size=d)
    contrast = rng.uniform(1 - config.contrast_range, 1 + config.contrast_range, size=d)
    label = rng.integers(0, config.num_classes, size=(d, s))
    # one row per frame, in (subject, session, frame) order
    dev = np.repeat(np.arange(d), s * f)
    lab = np.repeat(label.ravel(), f)
    pattern = perms[style[dev], lab]
    img = _stripes(config, pattern, rng.uniform(0, 2 * np.pi, size=dev.shape))
    img = img + config.texture_amp * textures[style[dev]]
    img = (img - 0.5) * contrast[dev, None, None] + 0.5 + brightness[dev, None, None]
    img = img + rng.normal(0, config.noise_std, size=img.shape)
    pixels = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    flat = pixels.reshape(len(dev), -1)
    return pl.DataFrame(
        {
            "subject": [f"D{i:04d}" for i in dev],
            "sequence": np.tile(np.repeat(np.arange(s), f), d).astype(np.int32),
            "position": np.tile(np.arange(f), d * s).astype(np.int32),
            "label": lab.astype(np.int32),
            "pixels": pl.Series([row.tobytes() for row in flat], dtype=pl.Binary),
            "source": [f"synthetic:{dev[i]}" for i in range(len(dev))],
        }
    )
