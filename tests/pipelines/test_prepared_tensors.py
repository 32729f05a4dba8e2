"""load_samples honours the duet/data.py contract; corrupt prepared files are DataErrors."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
import torch

from duet.data import ClickSamples, ImageSamples
from pipelines.errors import DataError
from pipelines.tensors import load_meta, load_samples


def test_click_samples_contract(prepared_clicks):
    meta = load_meta(prepared_clicks)
    s = load_samples(prepared_clicks, "test")
    assert isinstance(s, ClickSamples)
    positives = pl.read_parquet(prepared_clicks / "test.parquet").height
    assert len(s) == positives * 101
    # one stored history per positive, shared by its 100 negatives
    assert s.history.shape == (positives, meta["history_length"]) and s.history.dtype == torch.long
    assert s.row_history().shape == (len(s), meta["history_length"])
    assert torch.equal(s.history_of, s.group)
    subset = s.index(torch.tensor([0, 5, 202]))
    assert subset.history is s.history and torch.equal(
        subset.row_history(), s.row_history()[[0, 5, 202]]
    )
    assert s.realtime.shape == (meta["counts"]["sessions"], meta["realtime_size"])
    assert int(s.target.min()) >= 1 and int(s.target.max()) <= meta["num_items"]
    assert s.label.view(-1, 101)[:, 0].eq(1).all() and s.label.view(-1, 101)[:, 1:].eq(0).all()
    assert s.group.view(-1, 101).eq(s.group.view(-1, 101)[:, :1]).all()
    sessions = pl.read_parquet(prepared_clicks / "sessions.parquet")
    assert set(sessions["split"].gather(s.session.unique().numpy()).to_list()) == {"test"}


def test_a_sample_of_users_is_their_rows_only(prepared_clicks):
    """`duet-sim train --users N` trains on a sample of a population too big to train on."""
    every = load_samples(prepared_clicks, "train")
    sample = load_samples(prepared_clicks, "train", users=3)
    assert set(sample.user.unique().tolist()) == {0, 1, 2}
    assert len(sample) == int((every.user < 3).sum())


def test_image_samples_contract(prepared_video):
    s = load_samples(prepared_video, "train")
    assert isinstance(s, ImageSamples)
    assert s.pixels.shape[1:] == (1, 48, 48) and s.pixels.dtype == torch.float32
    assert float(s.pixels.min()) >= 0.0 and float(s.pixels.max()) <= 1.0
    first = s.position == 0
    assert torch.equal(s.realtime[s.session[first]], s.pixels[first])  # realtime = first frame


def test_truncated_parquet_is_a_data_error(prepared_clicks, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(prepared_clicks, copy)
    data = (copy / "train.parquet").read_bytes()
    (copy / "train.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train.parquet: cannot read Parquet"):
        load_samples(copy, "train")
    (copy / "meta.json").write_text("{")
    with pytest.raises(DataError, match="meta.json: cannot read"):
        load_meta(copy)


def test_unknown_split(prepared_clicks):
    with pytest.raises(ValueError, match="split: expected one of"):
        load_samples(prepared_clicks, "valid")


def test_same_seed_byte_identical_other_seed_differs(tmp_path, cli):
    def run(name, seed):
        out = tmp_path / name
        assert (
            cli(
                "data",
                "prepare",
                "--dataset",
                "synthetic-clicks",
                "--out",
                out,
                "--seed",
                seed,
                "--synthetic",
                "n_users=20",
                "--synthetic",
                "sessions_per_user=5",
            )
            == 0
        )
        return {p.name: p.read_bytes() for p in out.glob("*.parquet")}

    a, b, c = run("a", 5), run("b", 5), run("c", 6)
    assert a == b
    assert a["train.parquet"] != c["train.parquet"]
