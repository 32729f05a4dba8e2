"""CK+ readers: the CK+48 emotion-folder crop and the original Cohn-Kanade layout.

Both return one frame table (:data:`FRAMES_SCHEMA`): device = subject, session = sequence,
pixels as uint8 grayscale bytes (row-major H*W).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.errors import DataError

CKPLUS48_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
# Emotion/*_emotion.txt codes 0..7.
CKPLUS_CLASSES = ("neutral", *CKPLUS48_CLASSES)

FRAMES_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("sequence", pa.int32()),
        ("position", pa.int32()),
        ("label", pa.int32()),
        ("pixels", pa.binary()),
        ("source", pa.string()),
    ]
)

_NAME = re.compile(r"^S(\d+)_(\d+)_(\d+)\.png$")
_FRAMES_PER_END = 3  # original layout: first 3 frames (neutral) + last 3 (the emotion)


def detect_layout(directory: Path) -> str:
    """``"ckplus48"`` (emotion folders) or ``"original"`` (``cohn-kanade-images`` + ``Emotion``)."""
    if (directory / "cohn-kanade-images").is_dir() and (directory / "Emotion").is_dir():
        return "original"
    if any((directory / name).is_dir() for name in CKPLUS48_CLASSES):
        return "ckplus48"
    raise DataError(directory, "neither CK+48 emotion folders nor cohn-kanade-images/ + Emotion/")


def read_ckplus(directory: str | Path, image_size: int = 48) -> tuple[pl.DataFrame, list[str]]:
    """Read CK+ in either layout into frames plus the class names its labels index.

    Args:
        directory (str | Path): the dataset folder.
        image_size (int): frames are converted to grayscale and resized to this square size.

    Returns:
        tuple[pl.DataFrame, list[str]]: frames (:data:`FRAMES_SCHEMA`) and class names
        (7 emotions for CK+48, which has no neutral frames; neutral + 7 for the original).

    Raises:
        DataError: naming the offending file (bad name, corrupt PNG, bad label file).
    """
    directory = Path(directory)
    if detect_layout(directory) == "original":
        return _read_original(directory, image_size), list(CKPLUS_CLASSES)
    return _read_ckplus48(directory, image_size), list(CKPLUS48_CLASSES)


def load_gray(path: Path, image_size: int) -> bytes:
    """Decode one image to ``image_size``² uint8 grayscale bytes; a corrupt file is a DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L")
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).tobytes()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot decode image ({exc})") from exc


def _parse_name(path: Path) -> tuple[str, int, int]:
    match = _NAME.match(path.name)
    if match is None:
        raise DataError(path, "expected a file name like S005_001_00000011.png")
    return f"S{match[1]}", int(match[2]), int(match[3])


def _read_ckplus48(directory: Path, image_size: int) -> pl.DataFrame:
    """Emotion folders of apex frames; frames of a sequence must share one folder."""
    rows, owner = [], {}
    for label, emotion in enumerate(CKPLUS48_CLASSES):
        folder = directory / emotion
        for path in sorted(folder.glob("*.png")) if folder.is_dir() else ():
            subject, sequence, frame = _parse_name(path)
            if owner.setdefault((subject, sequence), emotion) != emotion:
                raise DataError(path, f"sequence also appears under {owner[(subject, sequence)]}/")
            rows.append(
                (
                    subject,
                    sequence,
                    frame,
                    label,
                    load_gray(path, image_size),
                    f"{emotion}/{path.name}",
                )
            )
    if not rows:
        raise DataError(directory, "no PNG frames found in the emotion folders")
    return _frames(rows)


def _read_original(directory: Path, image_size: int) -> pl.DataFrame:
    """Labelled sequences only: first 3 frames as neutral (0), last 3 as the emotion."""
    rows = []
    for label_file in sorted((directory / "Emotion").glob("S*/*/*_emotion.txt")):
        label = _read_label(label_file)
        subject, seq = label_file.parent.parent.name, label_file.parent.name
        frames = sorted((directory / "cohn-kanade-images" / subject / seq).glob("*.png"))
        if len(frames) < 2:
            raise DataError(label_file, f"labelled sequence has {len(frames)} frames (need >= 2)")
        head = frames[: min(_FRAMES_PER_END, len(frames) // 2)]
        tail = frames[max(len(head), len(frames) - _FRAMES_PER_END) :]
        for path in head + tail:
            subj, sequence, frame = _parse_name(path)
            rows.append(
                (
                    subj,
                    sequence,
                    frame,
                    0 if path in head else label,
                    load_gray(path, image_size),
                    str(path.relative_to(directory)),
                )
            )
    if not rows:
        raise DataError(directory / "Emotion", "no *_emotion.txt label files found")
    return _frames(rows)


def _read_label(path: Path) -> int:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        value = float(text)
    except ValueError as exc:
        raise DataError(path, f"expected one number 1..7, got {text[:40]!r}", 1) from exc
    if value != int(value) or not 1 <= value <= 7:
        raise DataError(path, f"emotion label must be an integer 1..7, got {value}", 1)
    return int(value)


def _frames(rows: list[tuple]) -> pl.DataFrame:
    """Rows (subject, sequence, frame number, ...) -> frame table with positions 0..n-1."""
    subject, sequence, frame, label, pixels, source = (list(c) for c in zip(*rows, strict=True))
    df = pl.DataFrame(
        {
            "subject": subject,
            "sequence": sequence,
            "frame": frame,
            "label": label,
            "pixels": pixels,
            "source": source,
        },
        schema_overrides={"sequence": pl.Int32, "label": pl.Int32},
    )
    df = df.sort("subject", "sequence", "frame")
    position = pl.int_range(pl.len()).over("subject", "sequence").cast(pl.Int32)
    return pl.from_arrow(
        df.with_columns(position=position)
        .drop("frame")
        .to_arrow()
        .select(FRAMES_SCHEMA.names)
        .cast(FRAMES_SCHEMA)
    )
