"""The built-in synthetic datasets: structure the knobs promise, validation, determinism."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.synthetic import (
    SyntheticClicksConfig,
    SyntheticVideoConfig,
    synthetic_clicks,
    synthetic_video,
)


def test_clicks_sessions_follow_their_cluster():
    config = SyntheticClicksConfig(
        n_users=50,
        n_items=600,
        n_clusters=12,
        sessions_per_user=24,
        p_focus=0.9,
        p_stay=0.0,
        p_taste=0.0,
    )
    inter, items = synthetic_clicks(config, seed=1)
    assert inter.height == 50 * 24 * 10
    cluster = (inter["item_id"].to_numpy() - 1) % config.n_clusters
    per_session = cluster.reshape(-1, 10)
    top_share = np.array([np.bincount(s, minlength=12).max() / 10 for s in per_session])
    assert top_share.mean() > 0.8  # ~p_focus of a session's clicks share one cluster
    ts = inter["ts"].to_numpy().reshape(50, 24, 10)
    assert (np.diff(ts[:, :, 0], axis=1) > np.diff(ts[:, 0, :], axis=1).max()).all()
    assert items["genres"].to_list()[0] == ["cluster-00"]


def test_clicks_p_stay_controls_interest_changes():
    def changes(p_stay):
        inter, _ = synthetic_clicks(
            SyntheticClicksConfig(
                n_users=80,
                n_items=600,
                n_clusters=12,
                sessions_per_user=24,
                p_focus=1.0,
                p_stay=p_stay,
                p_taste=0.0,
                p_favorite=0.0,
            ),
            0,
        )
        modal = np.array(
            [
                np.bincount(s).argmax()
                for s in ((inter["item_id"].to_numpy() - 1) % 12).reshape(-1, 10)
            ]
        )
        return (np.diff(modal.reshape(80, 24), axis=1) != 0).mean()

    assert changes(0.9) < 0.2 < 0.7 < changes(0.0)


def test_video_shapes_and_style_signal():
    config = SyntheticVideoConfig(n_subjects=6, sessions_per_subject=3)
    frames = synthetic_video(config, seed=0)
    assert frames.height == 6 * 3 * 6
    assert {len(p) for p in frames["pixels"].to_list()} == {48 * 48}
    labels = frames.group_by("subject", "sequence").agg(pl.col("label").n_unique())
    assert (labels["label"] == 1).all()  # one label per video
    again = synthetic_video(config, seed=0)
    assert frames.equals(again)
    assert not frames.equals(synthetic_video(config, seed=1))


@pytest.mark.parametrize(
    ("cls", "kw", "msg"),
    [
        (SyntheticClicksConfig, {"p_stay": 1.5}, r"p_stay: expected value in \[0, 1\], got 1.5"),
        (SyntheticClicksConfig, {"n_clusters": 0}, "n_clusters"),
        (SyntheticVideoConfig, {"num_classes": 1}, "num_classes"),
    ],
)
def test_config_validation(cls, kw, msg):
    with pytest.raises(ValueError, match=msg):
        cls(**kw)


def test_clicks_persistent_taste_shows_in_long_windows():
    """With p_taste, a user's clicks concentrate on its favourite clusters across sessions."""

    def top3_share(p_taste):
        config = SyntheticClicksConfig(
            n_users=60, n_clusters=24, n_items=960, p_taste=p_taste, p_stay=0.0, p_favorite=0.0
        )
        inter, _ = synthetic_clicks(config, seed=0)
        cluster = ((inter["item_id"].to_numpy() - 1) % 24).reshape(60, -1)
        return np.mean([np.sort(np.bincount(c, minlength=24))[-3:].sum() / len(c) for c in cluster])

    assert top3_share(0.5) > top3_share(0.0) + 0.1  # measured: 0.50 vs 0.32


def test_a_population_prepared_in_chunks_is_one_population(tmp_path, monkeypatch):
    """100,000 users are generated and prepared 10,000 at a time (here 7): ids stay dense and
    global, every row points at its own user's session, negatives avoid what that user
    clicked, and counts cover every chunk."""
    import pipelines.synthetic as synthetic
    from pipelines.prepare import prepare
    from pipelines.sessions import SessionOptions

    monkeypatch.setattr(synthetic, "CHUNK_USERS", 7)
    config = SyntheticClicksConfig(n_users=20, n_items=200, n_clusters=4, sessions_per_user=5)
    options = SessionOptions(history_length=10, test_sessions=2, test_negatives=20)
    meta = prepare("synthetic-clicks", tmp_path / "p", options=options, knobs=config)
    read = lambda name: pl.read_parquet(tmp_path / "p" / f"{name}.parquet")  # noqa: E731
    sessions = read("sessions")
    assert (
        sessions["user"].to_list() == sorted(sessions["user"]) and sessions["user"].n_unique() == 20
    )
    assert sessions["session"].to_list() == list(range(20 * 5))
    assert sessions["raw_user_id"].to_list() == (sessions["user"] + 1).to_list()
    clicked = sessions.explode("items").group_by("user").agg(pl.col("items").unique())
    clicked = {u: set(items) for u, items in clicked.iter_rows()}
    for split, per_user in (("train", 2), ("val", 1), ("test", 2)):
        rows = read(split)
        assert rows.height == 20 * per_user * 10
        owner = rows.join(sessions, on="session", suffix="_s")
        assert (owner["user"] == owner["user_s"]).all() and (owner["split"] == split).all()
        for user, negatives in rows.select("user", "negatives").iter_rows():
            assert not clicked[user] & set(negatives)
    assert meta["counts"]["users"] == 20 and meta["counts"]["sessions"] == 100
    assert meta["counts"]["test_rows"] == 400
    assert read("items")["popularity"].sum() == read("train").height

    with pytest.raises(ValueError, match="k_core"):  # a k-core needs every user at once
        prepare(
            "synthetic-clicks",
            tmp_path / "k",
            options=SessionOptions(k_core=2),
            knobs=config,
        )
