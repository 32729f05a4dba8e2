"""Corrupt data files: truncated Parquet, corrupted images, wrong text encodings and broken
checkpoints are each refused with an error naming the file (and the line, for text), and a run
given such a file stops before Ray starts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from actors.devices.replay import load_replays
from duet.checkpoint import CheckpointError, load_checkpoint
from pipelines.ckplus import read_ckplus
from pipelines.errors import DataError
from pipelines.movielens import read_movielens
from pipelines.shifts import click_context
from pipelines.tensors import load_meta, load_samples, verify_prepared
from simulation.cli import main

ray = pytest.importorskip("ray")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def prepared_copy(prepared, tmp_path) -> Path:
    return Path(shutil.copytree(prepared, tmp_path / "data"))


@pytest.fixture
def checkpoint_copy(checkpoints, tmp_path) -> Path:
    return Path(shutil.copytree(checkpoints["duet"], tmp_path / "din-duet"))


# every reader of a prepared file: the fleet's replays, the shift context, training samples
PREPARED_READERS: dict[str, Callable[[Path], object]] = {
    "sessions.parquet": lambda d: load_replays(d, [0]),
    "test.parquet": lambda d: load_replays(d, [0]),
    "items.parquet": click_context,
    "train.parquet": lambda d: load_samples(d, "train"),
}


@pytest.mark.parametrize("name", sorted(PREPARED_READERS))
def test_truncated_parquet_names_the_file(prepared_copy, name):
    truncate(prepared_copy / name)
    with pytest.raises(DataError, match="cannot read Parquet") as info:
        PREPARED_READERS[name](prepared_copy)
    assert info.value.path == prepared_copy / name
    with pytest.raises(DataError, match="SHA-256 differs from meta.json") as info:
        verify_prepared(prepared_copy)
    assert info.value.path == prepared_copy / name


def test_swapped_parquet_and_bad_meta(prepared_copy):
    """A readable file that is not the prepared one is caught by its hash; meta.json by name."""
    shutil.copy(prepared_copy / "test.parquet", prepared_copy / "train.parquet")
    with pytest.raises(DataError, match=r"train.parquet: SHA-256 differs"):
        verify_prepared(prepared_copy)
    (prepared_copy / "meta.json").write_text("{not json")
    with pytest.raises(DataError, match=r"meta.json: cannot read prepared metadata"):
        load_meta(prepared_copy)


CHECKPOINT_DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated weights": ("model.pt", lambda d: truncate(d / "model.pt"), "cannot load weights"),
    "pickled object": (
        "model.pt",
        lambda d: torch.save({"x": object()}, d / "model.pt"),
        "cannot load weights",
    ),
    "config not JSON": (
        "config.json",
        lambda d: (d / "config.json").write_text("{"),
        "not a model config",
    ),
    "config wrong shape": (
        "config.json",
        lambda d: (d / "config.json").write_text('{"a": 1}'),
        "not a model config",
    ),
    "weights missing": ("model.pt", lambda d: (d / "model.pt").unlink(), "not found"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_DAMAGE))
def test_broken_checkpoint_names_the_file(checkpoint_copy, case):
    name, damage, message = CHECKPOINT_DAMAGE[case]
    damage(checkpoint_copy)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(checkpoint_copy)
    assert info.value.path == checkpoint_copy / name and str(checkpoint_copy / name) in str(
        info.value
    )


def _ck48(root: Path, frames: dict[str, bytes]) -> Path:
    (root / "anger").mkdir(parents=True)
    good = root / "anger" / "S005_001_00000001.png"
    Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(good)
    for name, data in frames.items():
        (root / "anger" / name).write_bytes(data(good.read_bytes()) if callable(data) else data)
    return root


@pytest.mark.parametrize(
    "data",
    [
        lambda png: png[: len(png) // 2],  # truncated
        b"",  # empty
        b"GIF89a" + bytes(50),  # another format under a .png name
        lambda png: png[:16] + bytes(len(png) - 16),  # header intact, image data zeroed
    ],
)
def test_corrupted_png_names_the_file(tmp_path, data):
    root = _ck48(tmp_path / "ck-plus-48", {"S005_001_00000002.png": data})
    with pytest.raises(DataError, match="cannot decode image") as info:
        read_ckplus(root)
    assert info.value.path.name == "S005_001_00000002.png"


@pytest.mark.parametrize(
    "name, content",
    [
        ("u.data", "1\t2\t3\t4\n5\t6\t7\t8\n".encode("utf-16")),
        ("ratings.dat", "1::2::3::4\n".encode("utf-16-le")),  # no BOM: found by its NUL bytes
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n".encode("utf-16")),
    ],
)
def test_utf16_text_names_the_file(tmp_path, name, content):
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / name).write_bytes(content)
    with pytest.raises(DataError, match="looks like UTF-16") as info:
        read_movielens(tmp_path / "ml")
    assert info.value.path == tmp_path / "ml" / name


def test_latin1_files_saved_as_utf8_keep_their_titles(tmp_path):
    """GroupLens' latin-1 ``movies.dat`` re-saved as UTF-8 must not come out as mojibake."""
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "ratings.dat").write_bytes(b"1::2::3::4\n")
    (tmp_path / "ml" / "movies.dat").write_text("2::Caf\u00e9 (1995)::Drama\n", encoding="utf-8")
    _, items = read_movielens(tmp_path / "ml")
    assert items["title"].to_list() == ["Caf\u00e9 (1995)"]


@pytest.mark.parametrize("target", ["data", "checkpoint"])
def test_run_with_a_corrupt_file_stops_before_ray(
    scenario_file, checkpoints, prepared_copy, checkpoint_copy, capsys, target
):
    """The runner checks prepared files against meta.json and loads every checkpoint before
    Ray starts: one line naming the file, exit 1, no Ray."""
    broken = prepared_copy / "test.parquet" if target == "data" else checkpoint_copy / "model.pt"
    truncate(broken)
    path = scenario_file(
        data={"dataset": "synthetic-clicks", "prepared": str(prepared_copy)},
        model={
            "backbones": ["din"],
            "checkpoints": {"din/base": str(checkpoints["base"]), "din/duet": str(checkpoint_copy)},
        },
    )
    assert main(["run", str(path), "--no-progress"]) == 1
    assert str(broken) in capsys.readouterr().err
    assert not ray.is_initialized()
