"""DUET text export: one line per candidate, positive first, ids match the prepared tables."""

from __future__ import annotations

import polars as pl


def test_export_matches_prepared_rows(prepared_clicks, tmp_path, cli):
    assert cli("data", "export-duet", "--prepared", prepared_clicks, "--dest", tmp_path) == 0
    test = pl.read_parquet(prepared_clicks / "test.parquet")
    sessions = pl.read_parquet(prepared_clicks / "sessions.parquet")
    lines = (tmp_path / "test.txt").read_text().splitlines()
    assert len(lines) == test.height * 101
    row = test.row(0, named=True)
    user, item, trigger, clicks, label = lines[0].split(";")
    assert (int(user), int(item), label) == (row["user"], row["target"], "1")
    assert clicks == ",".join(str(i) for i in row["history"] if i)
    realtime = sessions.filter(pl.col("session") == row["session"])["realtime"].to_list()[0]
    assert trigger == ",".join(str(i) for i in realtime if i)
    assert [int(line.split(";")[1]) for line in lines[1:101]] == list(row["negatives"])
    assert {line.rsplit(";", 1)[1] for line in lines[1:101]} == {"0"}


def test_export_refuses_images(prepared_video, tmp_path, cli, capsys):
    assert cli("data", "export-duet", "--prepared", prepared_video, "--dest", tmp_path) == 1
    assert "click datasets only" in capsys.readouterr().err
