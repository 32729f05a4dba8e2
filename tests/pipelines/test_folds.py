"""Subject-independent k-fold cross-validation (pipelines/folds.py): the folds partition the
videos by subject, validation is another fold's subjects, and one seed gives one split."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import polars as pl
import pytest
from PIL import Image

from pipelines.ckplus import CKPLUS48_CLASSES, read_ckplus
from pipelines.images import build_image_tables
from pipelines.sessions import SessionOptions


def _splits(frames: pl.DataFrame, folds: int, fold: int, seed: int = 0) -> pl.DataFrame:
    tables = build_image_tables(frames, 48 * 48, SessionOptions(folds=folds, fold=fold), 1, seed)
    return pl.from_arrow(tables.sessions).select("subject", "sequence", "label", "split")


def _check_partition(frames: pl.DataFrame, folds: int, seed: int = 0) -> list[set[str]]:
    """Every video in exactly one test fold, every subject's videos in one fold, validation
    the next fold's subjects; returns each fold's test subjects."""
    videos = frames.select("subject", "sequence").unique()
    tested: Counter[tuple[str, int]] = Counter()
    subjects = []
    for fold in range(folds):
        sessions = _splits(frames, folds, fold, seed)
        assert sessions.height == videos.height
        test = sessions.filter(pl.col("split") == "test")
        tested.update(test.select("subject", "sequence").rows())
        by_split = {
            split: set(sessions.filter(pl.col("split") == split)["subject"])
            for split in ("train", "val", "test")
        }
        assert not by_split["test"] & (by_split["train"] | by_split["val"])
        assert not by_split["val"] & by_split["train"]
        subjects.append(by_split["test"])
    assert set(tested) == set(videos.rows()) and set(tested.values()) == {1}
    assert all(not a & b for i, a in enumerate(subjects) for b in subjects[i + 1 :])
    for fold in range(folds):  # validation: exactly the next fold's test subjects
        val = _splits(frames, folds, fold, seed).filter(pl.col("split") == "val")
        assert set(val["subject"]) == subjects[(fold + 1) % folds]
    return subjects


def _fixture(root, n_subjects: int = 16, seed: int = 0):
    """A CK+48 layout with 1-4 videos per subject of random emotions, 3 frames each."""
    rng = np.random.default_rng(seed)
    for s in range(1, n_subjects + 1):
        for seq in range(1, int(rng.integers(1, 5)) + 1):
            folder = root / CKPLUS48_CLASSES[int(rng.integers(len(CKPLUS48_CLASSES)))]
            folder.mkdir(parents=True, exist_ok=True)
            for frame in range(1, 4):
                pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"S{s:03d}_{seq:03d}_{frame:08d}.png")
    return root


def test_folds_partition_videos_by_subject_and_are_fixed_by_the_seed(tmp_path):
    frames, _ = read_ckplus(_fixture(tmp_path / "ck"))
    first = _check_partition(frames, folds=4)
    assert _check_partition(frames, folds=4) == first  # same seed, same folds
    assert [_splits(frames, 4, k, seed=1)["split"].to_list() for k in range(4)] != [
        _splits(frames, 4, k)["split"].to_list() for k in range(4)
    ]


def test_prepare_writes_the_fold_and_refuses_bad_settings(tmp_path, cli, capsys):
    _fixture(tmp_path / "ck-plus-48")
    args = ("data", "prepare", "--dataset", "ckplus", "--data-dir", tmp_path, "--folds", "4")
    for run in ("a", "b"):
        assert cli(*args, "--fold", "2", "--out", tmp_path / run) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["options"]["folds"] == 4 and meta["options"]["fold"] == 2
    assert meta["files"] == json.loads((tmp_path / "b" / "meta.json").read_text())["files"]
    assert cli(*args, "--fold", "4", "--out", tmp_path / "c") == 1
    assert "fold: expected an int in [0, 4), got 4" in capsys.readouterr().err
    assert cli(*args[:-2], "--folds", "1", "--out", tmp_path / "c") == 1
    assert "folds: expected 0 (time split) or an int >= 2, got 1" in capsys.readouterr().err
    clicks = ("data", "prepare", "--dataset", "synthetic-clicks", "--folds", "4")
    assert cli(*clicks, "--out", tmp_path / "c") == 1
    assert "subject folds are for image datasets" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.realdata
def test_ckplus48_ten_folds_cover_all_327_videos_stratified(real_data):
    frames, _ = read_ckplus(real_data("ck-plus-48"))
    subjects = _check_partition(frames, folds=10)
    assert sum(len(s) for s in subjects) == 118
    for fold in range(10):  # stratified: every fold tests every emotion but contempt's 18
        test = _splits(frames, 10, fold).filter(pl.col("split") == "test")
        assert 28 <= test.height <= 40, (fold, test.height)
        assert set(test["label"]) >= set(range(len(CKPLUS48_CLASSES))) - {1}
