"""Shared fixtures for pipelines/ tests: real-data location, CLI runner, small fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.movielens import ML100K_GENRES
from simulation.cli import main as data_main


@pytest.fixture(scope="session")
def real_data(data_dir: Path):
    """``folder -> data_dir/folder``, skipping (with the path) when that dataset is absent."""

    def find(folder: str) -> Path:
        path = data_dir / folder
        if not path.is_dir():
            pytest.skip(f"real dataset not found at {path}: set DUET_DATA_DIR")
        return path

    return find


def run_cli(*argv: str) -> int:
    """Run ``duet-sim data ...`` in-process; returns the exit code."""
    try:
        return data_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors exit 2
        return int(exc.code)


def make_interactions(n_users: int = 12, n_items: int = 40, per_user: int = 25, seed: int = 0):
    """Small random (user, item, ts) triples with distinct items per user and ties in ts."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False)
        ts = 1_000_000 + np.sort(rng.integers(0, 50_000, size=per_user)) // 7 * 7
        rows += [
            (user, int(i), int(t), int(rng.integers(1, 6))) for i, t in zip(items, ts, strict=True)
        ]
    return rows


GENRES = ["Action", "Comedy", "Drama", "Horror"]


def write_movielens(directory: Path, layout: str, rows=None, n_items: int = 40) -> Path:
    """Write a MovieLens fixture in ``layout`` ("100k", "dat" or "csv")."""
    rows = rows if rows is not None else make_interactions(n_items=n_items)
    directory.mkdir(parents=True, exist_ok=True)
    genres = {i: [GENRES[i % 4], GENRES[(i + 1) % 4]] for i in range(1, n_items + 1)}
    if layout == "100k":
        (directory / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, t, r in rows))

        def flags(i: int) -> str:
            return "|".join("1" if g in genres[i] else "0" for g in ML100K_GENRES)

        (directory / "u.item").write_bytes(
            "".join(
                f"{i}|Caf\u00e9 {i} (1995)|01-Jan-1995||http://x|{flags(i)}\n" for i in genres
            ).encode("latin-1")
        )
    elif layout == "dat":
        (directory / "ratings.dat").write_text(
            "".join(f"{u}::{i}::{r}::{t}\n" for u, i, t, r in rows)
        )
        (directory / "movies.dat").write_bytes(
            "".join(f"{i}::Caf\u00e9 {i} (1995)::{'|'.join(genres[i])}\n" for i in genres).encode(
                "latin-1"
            )
        )
    else:
        (directory / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp\n"
            + "".join(f"{u},{i},{r}.5,{t}\n" for u, i, t, r in rows)
        )
        (directory / "movies.csv").write_text(
            "movieId,title,genres\n"
            + "".join(f'{i},"Caf\u00e9, {i} (1995)",{"|".join(genres[i])}\n' for i in genres),
            encoding="utf-8",
        )
    return directory


@pytest.fixture(scope="session")
def cli():
    """``cli("data", "prepare", ...)`` -> exit code."""
    return run_cli


@pytest.fixture(scope="session")
def movielens_fixture():
    """``movielens_fixture(directory, layout, rows=None)`` writes a MovieLens fixture."""
    return write_movielens


@pytest.fixture(scope="session")
def prepared_clicks(tmp_path_factory) -> Path:
    """A small prepared synthetic-clicks directory shared by read-only tests."""
    out = tmp_path_factory.mktemp("prep") / "clicks"
    assert (
        run_cli(
            "data",
            "prepare",
            "--dataset",
            "synthetic-clicks",
            "--out",
            out,
            "--synthetic",
            "n_users=40",
            "--synthetic",
            "sessions_per_user=6",
        )
        == 0
    )
    return out


@pytest.fixture(scope="session")
def prepared_video(tmp_path_factory) -> Path:
    """A small prepared synthetic-video directory shared by read-only tests."""
    out = tmp_path_factory.mktemp("prep") / "video"
    assert (
        run_cli(
            "data",
            "prepare",
            "--dataset",
            "synthetic-video",
            "--out",
            out,
            "--synthetic",
            "n_subjects=12",
            "--synthetic",
            "sessions_per_subject=4",
        )
        == 0
    )
    return out
