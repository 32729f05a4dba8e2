"""Object-store locations against a real S3-compatible server on 127.0.0.1 (moto): bad URIs
are refused by name, inputs are copied to a node's cache once, and session parts are
written, listed and read back from the store as from a disk."""

from __future__ import annotations

import typing

import pytest

from actors.storage.rows import ROW_SCHEMA, SessionRow
from actors.storage.sink import FlushPolicy, PartSink, flushed_sessions, has_parts, read_sessions
from actors.storage.uris import (
    CACHE_ENV,
    LocationError,
    check_uri,
    exists,
    materialize,
    read_bytes,
    write_bytes,
)


def test_a_good_uri_passes_and_bad_ones_are_refused_by_name(s3, monkeypatch, tmp_path):
    assert check_uri(s3.uri("new-run"), must_exist=False) == s3.uri("new-run")
    cases = {
        "gs://duet-test/x": "unknown scheme 'gs'",
        "s3://no-such-bucket/x": "bucket 'no-such-bucket' not found",
        s3.uri("nothing-here"): "nothing found there",
        "s3://key:secret@duet-test/x": "credentials and options do not belong in a scenario",
        s3.uri("x?endpoint_override=evil"): "credentials and options do not belong",
    }
    for uri, message in cases.items():
        with pytest.raises(LocationError, match=message) as info:
            check_uri(uri, must_exist=True)
        assert "secret" not in str(info.value).replace("AWS_SECRET_ACCESS_KEY", "")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(LocationError, match="no AWS credentials"):
        check_uri(s3.uri("x"), must_exist=False)


def test_an_input_is_copied_to_the_node_cache_once(s3, monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "model.pt").write_bytes(b"weights")
    (src / "sub" / "a.json").write_text("{}")
    uri = s3.upload(src, "models", "m1")
    local = materialize(uri)
    assert (local / "model.pt").read_bytes() == b"weights" and (local / "sub" / "a.json").is_file()
    assert materialize(uri + "/") == local  # one copy per URI
    assert materialize(src) == src  # a local path is used where it is


def test_files_are_written_whole_and_read_back(s3):
    uri = s3.uri("run", "run.json")
    assert not exists(uri)
    write_bytes(uri, b'{"run_id": "r"}')
    assert exists(uri) and read_bytes(uri) == b'{"run_id": "r"}'


def run_rows(n: int, first: int = 0) -> list[SessionRow]:
    """``n`` rows of devices ``first``.., session 0, every other field a placeholder."""
    blank = {str: "x", int: 0, float: 0.5, bool: False}
    fields = {k: blank[t] for k, t in typing.get_type_hints(SessionRow).items()}
    return [SessionRow(**{**fields, "device_id": first + i}) for i in range(n)]


def test_session_parts_go_to_the_store_and_resume_from_it(s3):
    sessions = s3.uri("run-parts", "sessions")
    assert not has_parts(sessions) and read_sessions(sessions).schema == ROW_SCHEMA
    sink = PartSink(f"{sessions}/fleet=0", flush=FlushPolicy(flush_rows=3))
    rows = run_rows(7)
    for row in rows:
        sink.add([row])
    sink.flush()
    table = read_sessions(sessions)
    assert table.num_rows == 7 and has_parts(sessions)
    assert flushed_sessions(sessions, [0, 1, 2, 3, 4, 5, 6]) == {(d, 0) for d in range(7)}
    again = PartSink(
        f"{sessions}/fleet=0", flush=FlushPolicy(flush_rows=3)
    )  # a restarted fleet appends
    again.add([run_rows(1, first=7)[0]])
    again.flush()
    assert read_sessions(sessions).num_rows == 8
