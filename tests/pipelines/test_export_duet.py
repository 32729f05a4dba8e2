"""DUET text export: one line per candidate, positive first, ids match the prepared tables,
and every line parses the way the authors' loader parses it (``np.fromstring(..., sep=",")``
per sequence, then ``np.stack`` over a batch), right-padded as their models index it."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.export import right_padded


def parse_like_their_loader(line: str):
    """``MetaSequenceDataLoader.parse_data`` of HelloZicky/DUET, verbatim in behaviour."""
    data = line.strip("\n").split(";")
    return (
        int(data[0]),
        int(data[1]),
        np.fromstring(data[2], dtype=np.int32, sep=","),
        np.fromstring(data[3], dtype=np.int32, sep=","),
        float(data[4]),
    )


def test_right_padding_keeps_order_and_moves_zeros_last():
    ids = np.array([[0, 0, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0], [0, 9, 0, 2]])
    assert right_padded(ids).tolist() == [[3, 4, 0, 0], [5, 6, 7, 8], [0, 0, 0, 0], [9, 2, 0, 0]]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_line_loads_through_the_authors_parsing_rule(prepared_clicks, tmp_path, cli, split):
    assert cli("data", "export-duet", "--prepared", prepared_clicks, "--dest", tmp_path) == 0
    lines = (tmp_path / f"{split}.txt").read_text().splitlines()
    table = pl.read_parquet(prepared_clicks / f"{split}.parquet")
    k = table["negatives"].dtype.size
    assert len(lines) == table.height * (k + 1)
    parsed = [parse_like_their_loader(line) for line in lines]
    for start in range(0, len(parsed), 1024):  # their batches: np.stack must not fail
        batch = parsed[start : start + 1024]
        np.stack([p[2] for p in batch]), np.stack([p[3] for p in batch])
    clicks = np.stack([p[3] for p in parsed])
    assert clicks.shape == (len(parsed), table["history"].dtype.size)
    # right-padded: once a 0 appears only zeros follow, so (non-zero count - 1), which their
    # model reads the user state at, is the last click
    nonzero = clicks != 0
    assert (nonzero[:, :-1] | ~nonzero[:, 1:]).all()
    real = [x for x in table["history"][0] if x]
    assert clicks[0, : len(real)].tolist() == real and nonzero[0].sum() == len(real)


def test_export_matches_prepared_rows(prepared_clicks, tmp_path, cli):
    assert cli("data", "export-duet", "--prepared", prepared_clicks, "--dest", tmp_path) == 0
    test = pl.read_parquet(prepared_clicks / "test.parquet")
    sessions = pl.read_parquet(prepared_clicks / "sessions.parquet")
    lines = (tmp_path / "test.txt").read_text().splitlines()
    row = test.row(0, named=True)
    user, item, trigger, clicks, label = parse_like_their_loader(lines[0])
    assert (user, item, label) == (row["user"], row["target"], 1.0)
    real = [i for i in row["history"] if i]
    assert clicks.tolist() == real + [0] * (len(row["history"]) - len(real))
    realtime = sessions.filter(pl.col("session") == row["session"])["realtime"].to_list()[0]
    assert trigger.tolist() == [i for i in realtime if i] + [0] * realtime.count(0)
    assert [int(line.split(";")[1]) for line in lines[1:101]] == list(row["negatives"])
    assert {line.rsplit(";", 1)[1] for line in lines[1:101]} == {"0"}


def test_export_refuses_images(prepared_video, tmp_path, cli, capsys):
    assert cli("data", "export-duet", "--prepared", prepared_video, "--dest", tmp_path) == 1
    assert "click datasets only" in capsys.readouterr().err
