"""Where a run's inputs and outputs live: a local path, or an object-store URI read and
written through ``pyarrow.fs`` (``s3://bucket/prefix``), so that on a cluster without a
shared disk every node reaches the same prepared data, checkpoints and session parts.

Credentials never come from a scenario: a URI with a user, a password or a query string
is refused, and S3 credentials and endpoint come from the environment (``AWS_ACCESS_KEY_ID``
/ ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``; ``AWS_ENDPOINT_URL`` for an S3-
compatible server), as every AWS tool reads them.

Readers that need files on disk (torch checkpoints, the prepared tables read many times)
`materialize` a URI once per node into a local cache keyed by the URI; its contents are
taken to be immutable (a new model or dataset goes to a new prefix).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

SCHEMES = ("s3",)  # besides local paths (and file://, the same)
CACHE_ENV = "DUET_SIM_CACHE"  # where URIs are materialized; default ~/.cache/duet-sim
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")


class LocationError(ValueError):
    """A URI that cannot be used, with the reason (scheme, bucket, credentials)."""


def is_uri(value: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (other than file://), False for a local path."""
    text = str(value)
    return "://" in text and not text.startswith("file://")


def check_uri(uri: str, must_exist: bool) -> str:
    """``uri`` if it can be used: a known scheme, no credentials in it, credentials in the
    environment, an existing bucket, and with ``must_exist`` something at the prefix.

    Raises:
        LocationError: naming what is wrong.
    """
    parts = urlsplit(uri)
    if parts.scheme not in SCHEMES:
        raise LocationError(
            f"{uri!r}: unknown scheme {parts.scheme!r}; use a local path or one of "
            f"{[f'{s}://' for s in SCHEMES]}"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise LocationError(
            f"{_safe(uri)}: credentials and options do not belong in a scenario; set "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and AWS_ENDPOINT_URL"
        )
    if not parts.netloc:
        raise LocationError(f"{uri!r}: no bucket")
    if not _has_credentials():
        raise LocationError(
            f"{uri!r}: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or ~/.aws/credentials"
        )
    fs, path = _filesystem(uri)
    try:
        bucket = fs.get_file_info(parts.netloc)
        found = fs.get_file_info(path) if must_exist else None
    except OSError as exc:
        raise LocationError(f"{uri!r}: cannot reach the object store ({exc})") from None
    if bucket.type == pafs.FileType.NotFound:
        raise LocationError(f"{uri!r}: bucket {parts.netloc!r} not found")
    if found is not None and found.type == pafs.FileType.NotFound:
        raise LocationError(f"{uri!r}: nothing found there")
    return uri


def _safe(uri: str) -> str:
    """``uri`` without its user, password and query, fit for a log or an error."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def _has_credentials() -> bool:
    if any(os.environ.get(name) for name in _CREDENTIAL_ENV):
        return True
    shared = os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    return Path(shared).expanduser().is_file()


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise LocationError(f"{_safe(uri)}: {exc}") from None


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(file system, path in it) of a local path or a URI."""
    if is_uri(location):
        return _filesystem(str(location))
    return pafs.LocalFileSystem(), str(Path(str(location).removeprefix("file://")).resolve())


def join(location: str | os.PathLike, *names: str) -> str:
    """``location/name/...`` for a path or a URI (a URI keeps its scheme)."""
    base = str(location).rstrip("/")
    return "/".join([base, *names])


def materialize(location: str | os.PathLike) -> Path:
    """A local directory holding ``location``'s files: the path itself when local, else a
    copy in this node's cache (made once; concurrent callers race to one rename)."""
    if not is_uri(location):
        return Path(str(location).removeprefix("file://"))
    uri = str(location).rstrip("/")
    root = Path(os.environ.get(CACHE_ENV, "~/.cache/duet-sim")).expanduser()
    target = root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".partial-"))
    fs, path = _filesystem(uri)
    try:
        pafs.copy_files(path, str(staging), source_filesystem=fs)
        os.rename(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():  # not another process winning the rename: a real failure
            raise
    return target


def exists(location: str | os.PathLike) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str | os.PathLike) -> bytes:
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(location: str | os.PathLike, data: bytes) -> None:
    """Write one file whole: on a local disk to a temp name, then renamed over the target;
    on an object store in one upload, which becomes visible only once complete."""
    fs, path = filesystem(location)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def publish(local: str | os.PathLike, location: str | os.PathLike) -> None:
    """Copy a local file or folder to ``location`` (nothing to do when it is that path)."""
    fs, path = filesystem(location)
    if isinstance(fs, pafs.LocalFileSystem) and Path(path) == Path(local).resolve():
        return
    pafs.copy_files(str(Path(local).resolve()), path, destination_filesystem=fs)


def staging_dir(location: str) -> Path:
    """The local folder a run whose output is ``location`` (a URI) works in: its trained
    models, prepared data, Ray log and a copy of its rows for the report."""
    root = Path(os.environ.get(CACHE_ENV, "~/.cache/duet-sim")).expanduser()
    return root / "runs" / hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]
