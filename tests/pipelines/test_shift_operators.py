"""Each shift operator moves its distribution by a measured amount, other devices untouched."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.shifts import (
    SHIFTS,
    ImageSession,
    build_shift,
    click_context,
    image_context,
    session_rng,
)


def apply_shift(op, sessions, devices, seed, ctx, from_index=0):
    """Shift the sessions of ``devices`` (None = all) from ``from_index`` on, each with its
    own (seed, device, session) stream, as the fleet does; the rest pass through."""
    chosen = None if devices is None else set(devices)
    return [
        op.apply(s, session_rng(seed, s.user, s.index), ctx)
        if (chosen is None or s.user in chosen) and s.index >= from_index
        else s
        for s in sessions
    ]


SHIFTED = {0, 1, 2, 3, 4}


def tv(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance between two histograms."""
    return 0.5 * float(np.abs(p / p.sum() - q / q.sum()).sum())


def genre_hist(sessions, genres) -> np.ndarray:
    return genres[np.concatenate([s.items for s in sessions])].sum(axis=0).astype(float)


@pytest.fixture(scope="module")
def clicks(prepared_clicks):
    return click_context(prepared_clicks)


@pytest.fixture(scope="module")
def video(prepared_video):
    return image_context(prepared_video, "train")


def shift(spec, pool, ctx, seed=0):
    """Apply ``spec`` to devices in SHIFTED; check others are the very same objects."""
    out = apply_shift(build_shift(spec), pool, SHIFTED, seed, ctx)
    assert all(o is s for o, s in zip(out, pool, strict=True) if s.user not in SHIFTED)
    before = [s for s in pool if s.user in SHIFTED]
    after = [o for o, s in zip(out, pool, strict=True) if s.user in SHIFTED]
    return before, after


def test_genre_shift_moves_genre_histogram(clicks):
    ctx, pool = clicks
    before, after = shift(
        {"type": "genre_shift", "genre": "cluster-03", "fraction": 0.8}, pool, ctx
    )
    h0, h1 = genre_hist(before, ctx.item_genres), genre_hist(after, ctx.item_genres)
    assert tv(h0, h1) >= 0.5
    assert h1[ctx.genre_names.index("cluster-03")] / h1.sum() >= 0.75
    assert all(
        (s.realtime == 0).sum() == (a.realtime == 0).sum()
        for s, a in zip(before, after, strict=True)
    )


def test_popularity_shift_moves_mean_log_popularity(clicks):
    ctx, pool = clicks

    def mean_log_pop(sessions):
        return float(np.log1p(ctx.popularity[np.concatenate([s.items for s in sessions])]).mean())

    before, tail = shift({"type": "popularity_shift", "alpha": -2.0, "fraction": 1.0}, pool, ctx)
    _, head = shift({"type": "popularity_shift", "alpha": 2.0, "fraction": 1.0}, pool, ctx)
    assert mean_log_pop(tail) <= mean_log_pop(before) - 1.0
    assert mean_log_pop(head) >= mean_log_pop(before) + 0.3


def test_click_noise_replaces_about_rate(clicks):
    ctx, pool = clicks
    before, after = shift({"type": "click_noise", "rate": 0.5, "realtime": False}, pool, ctx)
    changed = np.mean(
        np.concatenate([s.items != a.items for s, a in zip(before, after, strict=True)])
    )
    assert 0.4 <= changed <= 0.6
    assert all(np.array_equal(s.realtime, a.realtime) for s, a in zip(before, after, strict=True))
    assert tv(genre_hist(before, ctx.item_genres), genre_hist(after, ctx.item_genres)) >= 0.1


def test_temporal_reversal_changes_order_not_histogram(clicks):
    ctx, pool = clicks
    before, after = shift({"type": "temporal_reversal"}, pool, ctx)
    for s, a in zip(before, after, strict=True):
        assert np.array_equal(a.items, s.items[::-1])
        real = s.realtime[s.realtime != 0]
        assert np.array_equal(a.realtime[a.realtime != 0], real[::-1])
    assert tv(genre_hist(before, ctx.item_genres), genre_hist(after, ctx.item_genres)) == 0.0


def test_user_swap_takes_another_users_session(clicks):
    ctx, pool = clicks
    before, after = shift({"type": "user_swap"}, pool, ctx)
    donors = {(tuple(s.items), tuple(s.realtime)): s.user for s in pool}
    for s, a in zip(before, after, strict=True):
        assert donors[(tuple(a.items), tuple(a.realtime))] != s.user
        assert a.user == s.user  # still the same device


def mean_px(sessions) -> float:
    return float(np.mean([s.pixels.mean() for s in sessions]))


def test_brightness_contrast(video):
    ctx, pool = video
    before, after = shift(
        {"type": "brightness_contrast", "brightness": 0.3, "contrast": 1.0}, pool, ctx
    )
    assert mean_px(after) - mean_px(before) >= 0.2 * 255
    _, flat = shift({"type": "brightness_contrast", "brightness": 0.0, "contrast": 0.5}, pool, ctx)
    assert np.mean([a.pixels.std() for a in flat]) <= 0.6 * np.mean(
        [s.pixels.std() for s in before]
    )


def test_gaussian_noise(video):
    ctx, pool = video
    before, after = shift({"type": "gaussian_noise", "std": 0.2}, pool, ctx)
    diff = np.concatenate(
        [(a.pixels.astype(float) - s.pixels).ravel() for s, a in zip(before, after, strict=True)]
    )
    assert 0.12 * 255 <= diff.std() <= 0.21 * 255


def test_blur_removes_high_frequencies(video):
    ctx, pool = video

    def edges(sessions):
        return float(
            np.mean([np.abs(np.diff(s.pixels.astype(float), axis=-1)).mean() for s in sessions])
        )

    before, after = shift({"type": "blur", "sigma": 2.0}, pool, ctx)
    assert edges(after) <= 0.6 * edges(before)


def test_occlusion_covers_a_square(video):
    ctx, pool = video
    before, after = shift({"type": "occlusion", "size": 0.25, "value": 0.0}, pool, ctx)
    for s, a in zip(before, after, strict=True):
        changed = (s.pixels != a.pixels).any(axis=(0, 1))  # (H, W)
        zero = (a.pixels == 0).all(axis=(0, 1))
        assert zero.sum() >= 12 * 12 and changed.sum() <= 12 * 12


def test_rotation(video):
    ctx, pool = video
    before, after = shift({"type": "rotation", "degrees": 90}, pool, ctx)
    for s, a in zip(before, after, strict=True):
        expected = np.rot90(s.pixels, 1, axes=(-2, -1)).astype(float)
        assert np.abs(a.pixels - expected).mean() < 2.0
        assert np.abs(a.pixels.astype(float) - s.pixels).mean() > 20.0


def test_subject_swap(video):
    ctx, pool = video
    before, after = shift({"type": "subject_swap"}, pool, ctx)
    owners = {s.pixels.tobytes(): s.user for s in pool}
    assert all(owners[a.pixels.tobytes()] != s.user for s, a in zip(before, after, strict=True))


def test_label_distribution_shift(video):
    ctx, pool = video
    before, after = shift({"type": "label_distribution_shift", "weights": [0, 0, 1, 0]}, pool, ctx)
    h0 = np.bincount([s.label for s in before], minlength=4).astype(float)
    h1 = np.bincount([a.label for a in after], minlength=4).astype(float)
    assert h1[2] == len(after) and tv(h0, h1) >= 0.5


def test_deterministic_order_independent_and_composable(clicks):
    ctx, pool = clicks
    spec = [{"type": "click_noise", "rate": 0.3}, {"type": "temporal_reversal"}]
    a = apply_shift(build_shift(spec), pool, None, 7, ctx)
    b = apply_shift(build_shift(spec), pool[::-1], None, 7, ctx)[::-1]
    assert all(np.array_equal(x.items, y.items) for x, y in zip(a, b, strict=True))
    c = apply_shift(build_shift(spec), pool, None, 8, ctx)
    assert not all(np.array_equal(x.items, y.items) for x, y in zip(a, c, strict=True))
    late = apply_shift(build_shift(spec), pool, None, 7, ctx, from_index=3)
    assert all(o is s for o, s in zip(late, pool, strict=True) if s.index < 3)


def test_inputs_are_not_mutated(video):
    ctx, pool = video
    s = pool[0]
    copy = s.pixels.copy()
    for key in ("brightness_contrast", "gaussian_noise", "blur", "occlusion", "rotation"):
        build_shift({"type": key}).apply(s, np.random.default_rng(0), ctx)
    assert np.array_equal(s.pixels, copy) and isinstance(s, ImageSession)


@pytest.mark.parametrize(
    ("spec", "exc", "msg"),
    [
        ({"type": "genre_swap"}, ValueError, "unknown shift operator .genre_swap.; registered"),
        (
            {"type": "blur", "radius": 2},
            TypeError,
            r"blur: .*'radius'.*accepted parameters: \['sigma'\]",
        ),
        (
            {"type": "click_noise", "rate": 1.5},
            ValueError,
            r"rate: expected number in \(0, 1\], got 1.5",
        ),
        ({"type": "rotation", "degrees": "90"}, TypeError, "degrees: expected number"),
        ({"type": "label_distribution_shift", "weights": []}, ValueError, "weights: expected"),
    ],
)
def test_build_shift_errors_quote_key_and_value(spec, exc, msg):
    with pytest.raises(exc, match=msg):
        build_shift(spec)


def test_registry_has_every_operator():
    assert set(SHIFTS) == {
        "user_swap",
        "genre_shift",
        "popularity_shift",
        "click_noise",
        "temporal_reversal",
        "brightness_contrast",
        "gaussian_noise",
        "blur",
        "occlusion",
        "rotation",
        "subject_swap",
        "label_distribution_shift",
    }
