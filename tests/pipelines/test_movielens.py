"""MovieLens readers in every layout, and bad input rejected with file and line, nothing written."""

from __future__ import annotations

import re

import polars as pl
import pytest

from pipelines.errors import DataError
from pipelines.movielens import read_movielens


@pytest.mark.parametrize("layout", ["100k", "dat", "csv"])
def test_layouts_read_the_same_interactions(tmp_path, movielens_fixture, layout):
    interactions, items = read_movielens(movielens_fixture(tmp_path / layout, layout))
    reference, _ = read_movielens(movielens_fixture(tmp_path / "ref", "100k"))
    assert interactions.equals(reference)
    assert interactions.schema == pl.Schema(
        {"user_id": pl.Int64, "item_id": pl.Int64, "ts": pl.Int64}
    )
    assert items.height == 40
    first = items.filter(pl.col("item_id") == 1).row(0, named=True)
    assert first["title"].startswith("Caf\u00e9")  # latin-1 / UTF-8 decoded correctly
    assert first["genres"] == ["Comedy", "Drama"]


@pytest.mark.parametrize("layout", ["dat", "csv"])
def test_prepare_dat_and_csv_layouts(tmp_path, movielens_fixture, cli, layout):
    name = {"dat": "ml-1m", "csv": "ml-25m"}[layout]
    dataset = {"dat": "movielens-1m", "csv": "movielens-25m"}[layout]
    movielens_fixture(tmp_path / name, layout)
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            dataset,
            "--data-dir",
            tmp_path,
            "--out",
            tmp_path / "out",
            "--test-negatives",
            "10",
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "items.parquet",
        "meta.json",
        "sessions.parquet",
        "test.parquet",
        "train.parquet",
        "val.parquet",
    ]


def _bad(directory, name: str, content: bytes):
    directory.mkdir()
    (directory / name).write_bytes(content)
    return directory


BAD_INPUTS = [
    ("u.data", b"", "file is empty", None),
    ("u.data", b"1,2,3,4\n5,6,7,8\n", "expected 4 fields separated by '\\t', got 1: '1,2,3,4'", 1),
    ("u.data", b"1\t2\t3\t4\n1\tx\t3\t5\n", "item_id is not a number", 2),
    ("u.data", b"1\t2\t3\t4\n1\t2\t3\n", "expected 4 fields", 2),
    ("ratings.dat", b"1::2::3::4\n1::2::3::4::5\n", "expected 4 fields", 2),
    (
        "ratings.csv",
        b"userId,movieId,rating,timestamp\n1,2,3.5,9\nu1,2,3,9\n",
        "user_id is not a number",
        3,
    ),
]


@pytest.mark.parametrize(("name", "content", "message", "line"), BAD_INPUTS)
def test_bad_ratings_name_file_and_line(tmp_path, name, content, message, line):
    directory = _bad(tmp_path / "ml", name, content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        read_movielens(directory)
    assert info.value.path == directory / name
    assert info.value.line == line


def test_wrong_encoding_names_line(tmp_path):
    directory = _bad(tmp_path / "ml", "ratings.csv", b"userId,movieId,rating,timestamp\n1,2,3,4\n")
    (directory / "movies.csv").write_bytes(
        b"movieId,title,genres\n2,Good,Drama\n3,Bad \xff\xfe,Drama\n"
    )
    with pytest.raises(DataError, match=r"movies.csv:3: not valid UTF-8"):
        read_movielens(directory)


def test_missing_ratings_file(tmp_path):
    (tmp_path / "ml").mkdir()
    with pytest.raises(DataError, match="no MovieLens ratings file"):
        read_movielens(tmp_path / "ml")


def test_cli_bad_input_one_line_and_no_partial_output(tmp_path, cli, capsys):
    _bad(tmp_path / "ml-100k", "u.data", b"1\t2\t3\t4\n1\t2\tthree\t4\n")
    out = tmp_path / "prepared"
    assert (
        cli("data", "prepare", "--dataset", "movielens-100k", "--data-dir", tmp_path, "--out", out)
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("duet-sim data prepare: error: ")
    assert "u.data:2: rating is not a number" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k"]  # no out, no temp dir


def test_failed_prepare_keeps_previous_output(tmp_path, movielens_fixture, cli):
    movielens_fixture(tmp_path / "ml-100k", "100k")
    out = tmp_path / "prepared"
    args = (
        "data",
        "prepare",
        "--dataset",
        "movielens-100k",
        "--data-dir",
        tmp_path,
        "--out",
        out,
        "--test-negatives",
        "10",
    )
    assert cli(*args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "ml-100k" / "u.data").write_bytes(b"")
    assert cli(*args) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
