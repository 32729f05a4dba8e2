"""``duet-sim data fetch``: download an official MovieLens archive, verify it, unpack atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pipelines.errors import DataError

log = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens"

# dataset -> (archive, folder it unpacks to, published checksum). GroupLens publishes an
# .md5 beside each archive; ml-latest* change over time, so nothing can be pinned for them.
ARCHIVES: dict[str, tuple[str, str, str | None]] = {
    "movielens-100k": ("ml-100k.zip", "ml-100k", "md5:0e33842e24a9c977be4e0107933c0723"),
    "movielens-1m": ("ml-1m.zip", "ml-1m", "md5:c4d9eecfca2ab87c1945afe126590906"),
    "movielens-10m": ("ml-10m.zip", "ml-10M100K", "md5:ce571fd55effeba0271552578f2648bd"),
    "movielens-20m": ("ml-20m.zip", "ml-20m", "md5:cd245b17a1ae2cc31bb14903e1204af3"),
    "movielens-25m": ("ml-25m.zip", "ml-25m", "md5:6b51fb2759a8657d3bfcbfc42b592ada"),
    "movielens-latest": ("ml-latest.zip", "ml-latest", None),
    "movielens-latest-small": ("ml-latest-small.zip", "ml-latest-small", None),
}

CKPLUS_LICENSE = (
    "CK+ cannot be downloaded automatically: its license requires each user to request "
    "access. Ask the dataset owners (Cohn-Kanade AU-Coded Expression Database, "
    "https://www.jeffcohn.net/Resources/ ; Lucey et al., CVPR Workshops 2010), agree to "
    "their terms, then unpack it under $DUET_DATA_DIR/ck-plus-48 (CK+48 crop) or "
    "$DUET_DATA_DIR/CK+ (original cohn-kanade-images/ + Emotion/) and run "
    "`duet-sim data prepare --dataset ckplus`."
)


def parse_checksum(text: str) -> tuple[str, str]:
    """``"md5:<hex>"`` or ``"sha256:<hex>"`` -> (algorithm, lowercase hex).

    Raises:
        ValueError: unknown algorithm or a digest of the wrong length.
    """
    algo, _, digest = text.partition(":")
    lengths = {"md5": 32, "sha256": 64}
    if algo not in lengths or len(digest) != lengths[algo]:
        raise ValueError(f"checksum: expected 'md5:<32 hex>' or 'sha256:<64 hex>', got {text!r}")
    return algo, digest.lower()


def fetch(
    dataset: str,
    dest: str | Path,
    *,
    base_url: str = BASE_URL,
    checksum: str | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``dataset``'s archive into ``dest/<folder>``; nothing is left half-written.

    Args:
        dataset (str): a key of :data:`ARCHIVES`.
        dest (str | Path): the data root (e.g. ``$DUET_DATA_DIR``).
        base_url (str): where archives live (tests point it at a local server).
        checksum (str | None): ``md5:…``/``sha256:…`` overriding the published one.
        timeout_s (float): socket timeout per read.

    Returns:
        Path: the unpacked folder (returned unchanged if it already exists).

    Raises:
        ValueError: unknown dataset or malformed checksum.
        DataError: download failed, checksum mismatch, or a bad archive.
    """
    if dataset not in ARCHIVES:
        raise ValueError(f"dataset: expected one of {', '.join(ARCHIVES)}, got {dataset!r}")
    archive, folder, published = ARCHIVES[dataset]
    target = Path(dest) / folder
    if target.exists():
        log.info("%s already present; not downloading", target)
        return target
    expected = parse_checksum(checksum or published) if (checksum or published) else None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".fetch-{folder}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        url = f"{base_url.rstrip('/')}/{archive}"
        digests = _download(url, tmp / archive, timeout_s)
        _verify(url, digests, expected)
        os.replace(_unpack(tmp / archive, tmp / "unpacked", folder), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(url: str, path: Path, timeout_s: float) -> dict[str, str]:
    """Stream ``url`` to ``path``, hashing as it goes; returns md5 and sha256 hex digests."""
    hashes = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp, path.open("wb") as out:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                for h in hashes.values():
                    h.update(block)
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(url, f"download failed ({exc})") from exc
    return {name: h.hexdigest() for name, h in hashes.items()}


def _verify(url: str, digests: dict[str, str], expected: tuple[str, str] | None) -> None:
    if expected is None:
        log.warning(
            "%s has no published checksum; sha256 is %s (pass --checksum to pin it)",
            url,
            digests["sha256"],
        )
        return
    algo, want = expected
    if digests[algo] != want:
        raise DataError(
            url,
            f"{algo} mismatch: expected {want}, got {digests[algo]}; "
            "download rejected (corrupt or changed archive)",
        )


def _unpack(archive: Path, into: Path, folder: str) -> Path:
    """Extract, refusing members that escape ``into``; returns the dataset's folder in it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                resolved = (into / name).resolve()
                if not resolved.is_relative_to(into.resolve()):
                    raise DataError(archive, f"archive member escapes the target: {name!r}")
            bad = zf.testzip()
            if bad is not None:
                raise DataError(archive, f"corrupt archive member {bad!r}")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DataError(archive, f"not a valid zip archive ({exc})") from exc
    if (into / folder).is_dir():
        return into / folder
    entries = [p for p in into.iterdir() if not p.name.startswith("__MACOSX")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    raise DataError(archive, f"expected one top-level folder {folder!r} in the archive")
