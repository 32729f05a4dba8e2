"""CK+ readers: the original layout (fixture generated here), CK+48 naming rules, bad images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipelines.ckplus import read_ckplus
from pipelines.errors import DataError


def _original(root, sequences):
    """sequences: {(subject, seq): (n_frames, label or None)} in the original CK+ layout."""
    for (subject, seq), (n, label) in sequences.items():
        frames = root / "cohn-kanade-images" / subject / seq
        frames.mkdir(parents=True)
        for f in range(1, n + 1):
            img = np.full((49, 64, 3), 10 * f, dtype=np.uint8)  # colour, not 48x48: gets resized
            Image.fromarray(img).save(frames / f"{subject}_{seq}_{f:08d}.png")
        if label is not None:
            emotion = root / "Emotion" / subject / seq
            emotion.mkdir(parents=True)
            (emotion / f"{subject}_{seq}_{n:08d}_emotion.txt").write_text(f"   {label:.7e}\n")
    return root


def test_original_layout_keeps_labelled_sequences_first3_neutral_last3_emotion(tmp_path):
    root = _original(
        tmp_path, {("S005", "001"): (11, 3), ("S005", "002"): (8, None), ("S010", "004"): (9, 5)}
    )
    frames, classes = read_ckplus(root)
    assert classes[0] == "neutral" and classes[3] == "disgust" and len(classes) == 8
    assert frames.select("subject", "sequence").unique().sort("subject").rows() == [
        ("S005", 1),
        ("S010", 4),
    ]
    s005 = frames.filter(frames["subject"] == "S005")
    assert s005["label"].to_list() == [0, 0, 0, 3, 3, 3]
    assert s005["position"].to_list() == list(range(6))
    assert s005["source"].to_list()[-1].endswith("S005_001_00000011.png")
    first = np.frombuffer(s005["pixels"][0], dtype=np.uint8)
    assert first.size == 48 * 48 and abs(int(first.mean()) - 10) <= 1  # grayscale of frame 1


def test_prepare_original_layout(tmp_path, cli):
    _original(
        tmp_path / "CK+",
        {("S005", "001"): (7, 1), ("S005", "002"): (6, 7), ("S011", "001"): (6, 2)},
    )
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            "ckplus",
            "--data-dir",
            tmp_path,
            "--out",
            tmp_path / "o",
        )
        == 0
    )
    import json

    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    # S005 has 2 sequences (train, test), S011 one (train): neither can spare a validation one
    assert meta["counts"] == {
        "users": 2,
        "sessions": 3,
        "frames": 18,
        "train_sessions": 2,
        "val_sessions": 0,
        "test_sessions": 1,
        "train_rows": 12,
        "val_rows": 0,
        "test_rows": 6,
    }
    assert meta["num_classes"] == 8


def test_bad_label_file(tmp_path):
    root = _original(tmp_path, {("S005", "001"): (6, 3)})
    next((root / "Emotion").rglob("*.txt")).write_text("happy\n")
    with pytest.raises(DataError, match=r"_emotion.txt:1: expected one number"):
        read_ckplus(root)


def _ck48(root, names):
    for folder, name in names:
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((48, 48), dtype=np.uint8)).save(root / folder / name)
    return root


def test_corrupt_png_names_the_file(tmp_path, cli, capsys):
    root = _ck48(tmp_path / "ck-plus-48", [("anger", "S005_001_00000001.png")])
    (root / "anger" / "S005_001_00000002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert (
        cli(
            "data",
            "prepare",
            "--dataset",
            "ckplus",
            "--data-dir",
            tmp_path,
            "--out",
            tmp_path / "o",
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "S005_001_00000002.png: cannot decode image" in err
    assert not (tmp_path / "o").exists()


def test_bad_file_name_and_split_sequence(tmp_path):
    root = _ck48(tmp_path / "a", [("happy", "face.png")])
    with pytest.raises(DataError, match="expected a file name like"):
        read_ckplus(root)
    root = _ck48(
        tmp_path / "b", [("happy", "S005_001_00000001.png"), ("fear", "S005_001_00000002.png")]
    )
    with pytest.raises(DataError, match="sequence also appears under"):
        read_ckplus(root)
