"""The issue's must-shows on the real datasets (skipped when DUET_DATA_DIR is absent)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.ckplus import read_ckplus
from pipelines.movielens import read_movielens

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ml100k_prepared(tmp_path_factory, real_data, cli):
    src = real_data("ml-100k")
    root = tmp_path_factory.mktemp("ml100k")
    for run in ("a", "b"):
        assert (
            cli(
                "data",
                "prepare",
                "--dataset",
                "movielens-100k",
                "--data-dir",
                src.parent,
                "--out",
                root / run,
                "--seed",
                "0",
            )
            == 0
        )
    return root


def test_ml100k_counts(real_data):
    interactions, items = read_movielens(real_data("ml-100k"))
    assert interactions.height == 100_000
    assert interactions["user_id"].n_unique() == 943
    assert interactions["item_id"].n_unique() == 1682
    assert items.height == 1682
    assert interactions.row(0) == (196, 242, 881250949)


def test_ml100k_prepared_meta(ml100k_prepared):
    import json

    meta = json.loads((ml100k_prepared / "a" / "meta.json").read_text())
    assert (meta["num_users"], meta["num_items"], meta["counts"]["interactions"]) == (
        943,
        1682,
        100_000,
    )


def test_ml100k_test_negatives_are_100_unseen(ml100k_prepared):
    out = ml100k_prepared / "a"
    seen = pl.concat(
        [
            pl.read_parquet(out / f"{s}.parquet", columns=["user", "target"])
            for s in ("train", "test")
        ]
    )
    test = pl.read_parquet(out / "test.parquet")
    negatives = np.stack(test["negatives"].to_numpy())
    assert negatives.shape == (test.height, 100)
    assert all(len(set(row)) == 100 for row in negatives[:500])
    keys = set(zip(seen["user"].to_list(), seen["target"].to_list(), strict=True))
    users = np.repeat(test["user"].to_numpy(), 100)
    collisions = sum((u, i) in keys for u, i in zip(users, negatives.ravel(), strict=True))
    assert collisions == 0


def test_ml100k_no_test_before_train(ml100k_prepared):
    out = ml100k_prepared / "a"
    train = pl.read_parquet(out / "train.parquet").group_by("user").agg(last=pl.col("ts").max())
    test = pl.read_parquet(out / "test.parquet").group_by("user").agg(first=pl.col("ts").min())
    joined = test.join(train, on="user")
    assert joined.height == 943
    assert (joined["first"] >= joined["last"]).all()


def test_ml100k_byte_identical(ml100k_prepared):
    for name in ("sessions", "train", "test", "items"):
        a = (ml100k_prepared / "a" / f"{name}.parquet").read_bytes()
        assert a == (ml100k_prepared / "b" / f"{name}.parquet").read_bytes(), name


def test_ckplus48_counts(tmp_path, real_data, cli):
    src = real_data("ck-plus-48")
    frames, classes = read_ckplus(src)
    assert frames.height == 981
    assert frames["subject"].n_unique() == 118
    assert frames.select("subject", "sequence").n_unique() == 327
    counts = dict(zip(*np.unique(frames["label"].to_numpy(), return_counts=True), strict=True))
    expected = {
        "anger": 135,
        "contempt": 54,
        "disgust": 177,
        "fear": 75,
        "happy": 207,
        "sadness": 84,
        "surprise": 249,
    }
    assert {classes[k]: int(v) for k, v in counts.items()} == expected
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            "ckplus",
            "--data-dir",
            src.parent,
            "--out",
            tmp_path / "ck",
        )
        == 0
    )
    import json

    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert (meta["num_users"], meta["counts"]["sessions"], meta["counts"]["frames"]) == (
        118,
        327,
        981,
    )
    assert meta["class_names"] == list(expected)


def test_paper_ml100k_protocol_is_the_30_core_data(tmp_path, real_data, cli):
    """`--protocol paper-ml100k` keeps what a 30-core filter keeps (HelloZicky/DUET's config
    implies it: 720 users, 795 items, which fit the authors' 900-id vocabulary), with the
    paper's history and negatives; an option given after the preset overrides it."""
    import json

    src = real_data("ml-100k")
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            "movielens-100k",
            "--data-dir",
            src.parent,
            "--protocol",
            "paper-ml100k",
            "--out",
            tmp_path / "p",
        )
        == 0
    )
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert (meta["num_users"], meta["num_items"]) == (720, 795)
    assert meta["options"]["k_core"] == 30 and meta["options"]["history_length"] == 30
    assert (meta["options"]["train_negatives"], meta["options"]["test_negatives"]) == (4, 100)
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            "movielens-100k",
            "--data-dir",
            src.parent,
            "--protocol",
            "paper-ml100k",
            "--k-core",
            "20",
            "--out",
            tmp_path / "q",
        )
        == 0
    )
    assert json.loads((tmp_path / "q" / "meta.json").read_text())["num_items"] == 937
