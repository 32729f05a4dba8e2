"""MovieLens readers for every official layout (100K, 1M/10M ``.dat``, 20M/25M/latest CSV).

Each reader returns two polars frames: interactions (:data:`INTERACTIONS_SCHEMA`, every
rating is an implicit positive, so the rating value is dropped) and items
(:data:`ITEMS_SCHEMA`, with genre names for genre shifts).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.errors import DataError

log = logging.getLogger(__name__)

INTERACTIONS_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("item_id", pa.int64()), ("ts", pa.int64())]
)
ITEMS_SCHEMA = pa.schema(
    [("item_id", pa.int64()), ("title", pa.string()), ("genres", pa.list_(pa.string()))]
)

# u.item's 19 genre flags, in file order (also in u.genre).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

# layout name -> (ratings file, items file, field separator, has header)
LAYOUTS = {
    "100k": ("u.data", "u.item", "\t", False),
    "dat": ("ratings.dat", "movies.dat", "::", False),
    "csv": ("ratings.csv", "movies.csv", ",", True),
}
_RATING_FIELDS = ("user_id", "item_id", "rating", "ts")


def detect_layout(directory: Path) -> str:
    """Name the MovieLens layout found in ``directory`` (a key of :data:`LAYOUTS`).

    Raises:
        DataError: if no known ratings file is there.
    """
    for name, (ratings, _, _, _) in LAYOUTS.items():
        if (directory / ratings).is_file():
            return name
    wanted = ", ".join(r for r, _, _, _ in LAYOUTS.values())
    raise DataError(directory, f"no MovieLens ratings file found (looked for {wanted})")


def read_movielens(directory: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read interactions and items from a MovieLens directory of any official layout.

    Args:
        directory (str | Path): folder holding e.g. ``u.data`` or ``ratings.dat``/``ratings.csv``.

    Returns:
        tuple[pl.DataFrame, pl.DataFrame]: interactions and items frames.

    Raises:
        DataError: naming the file and line of the first malformed record.
    """
    directory = Path(directory)
    layout = detect_layout(directory)
    ratings_name, items_name, sep, header = LAYOUTS[layout]
    interactions = read_ratings(directory / ratings_name, sep=sep, header=header)
    items_path = directory / items_name
    if not items_path.is_file():
        log.warning("%s missing: items get no genres", items_path)
        items = _items_frame([])
    elif layout == "100k":
        items = read_u_item(items_path)
    else:
        items = read_movies(items_path, sep=sep, header=header)
    return interactions, items


def _text(path: Path) -> bytes:
    """File bytes, refusing a missing, empty or UTF-16 file up front (polars' message names
    none of them, and UTF-16's NUL bytes would otherwise surface as "not a number")."""
    if not path.is_file():
        raise DataError(path, "file not found")
    data = path.read_bytes()
    if not data.strip():
        raise DataError(path, "file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise DataError(
            path,
            "looks like UTF-16 (byte-order mark or NUL bytes); MovieLens files "
            "are ASCII, latin-1 or UTF-8: re-encode it, e.g. iconv -f UTF-16 -t UTF-8",
        )
    return data


def _legacy_text(data: bytes) -> str:
    """GroupLens ships ``u.item`` and ``movies.dat`` in latin-1, but re-saved copies are often
    UTF-8. Non-ASCII latin-1 text is almost never valid UTF-8, so UTF-8 is tried first:
    decoding a UTF-8 file as latin-1 would silently garble every accented title."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_ratings(path: Path, *, sep: str, header: bool) -> pl.DataFrame:
    """Parse a ratings file into :data:`INTERACTIONS_SCHEMA`.

    The fast path is one polars read of string columns plus a lenient cast; only when that
    fails does a line-by-line scan run, to name the first bad line.
    """
    data = _text(path)
    if len(sep) > 1:  # polars takes single-byte separators; '::' never occurs inside a field
        data = data.replace(sep.encode(), b"\t")
    one_sep = "\t" if len(sep) > 1 else sep
    try:
        raw = pl.read_csv(
            io.BytesIO(data),
            separator=one_sep,
            has_header=header,
            new_columns=list(_RATING_FIELDS),
            schema_overrides=dict.fromkeys(_RATING_FIELDS, pl.String),
            quote_char=None,
        )
    except pl.exceptions.PolarsError as exc:
        raise _locate(path, sep, header) from exc
    if raw.width != len(_RATING_FIELDS):
        raise _locate(path, sep, header)
    typed = raw.select(
        pl.col("user_id", "item_id", "ts").str.strip_chars().cast(pl.Int64, strict=False),
        pl.col("rating").str.strip_chars().cast(pl.Float64, strict=False),
    )
    if typed.null_count().sum_horizontal().item() > 0:
        raise _locate(path, sep, header)
    if typed.height == 0:
        raise DataError(path, "no ratings (only a header)")
    return typed.select("user_id", "item_id", "ts")


def _locate(path: Path, sep: str, header: bool) -> DataError:
    """Slow path: find the first malformed line so the error can name it."""
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        if header and number == 1:
            continue
        fields = line.split(sep)
        if len(fields) != len(_RATING_FIELDS):
            return DataError(
                path,
                f"expected {len(_RATING_FIELDS)} fields separated by {sep!r}, got "
                f"{len(fields)}: {line[:80]!r}",
                line=number,
            )
        for name, value in zip(_RATING_FIELDS, fields, strict=True):
            try:
                float(value) if name == "rating" else int(value)
            except ValueError:
                return DataError(path, f"{name} is not a number: {value[:40]!r}", line=number)
    return DataError(path, "could not parse ratings")


def read_u_item(path: Path) -> pl.DataFrame:
    """Parse 100K's ``u.item``: latin-1 (or UTF-8), ``|``-separated, 19 trailing 0/1 genre flags."""
    rows = []
    for number, line in enumerate(_legacy_text(_text(path)).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(ML100K_GENRES):
            raise DataError(path, f"expected 24 '|'-separated fields, got {len(fields)}", number)
        flags = fields[5:]
        if not fields[0].isdigit() or any(f not in ("0", "1") for f in flags):
            raise DataError(path, f"bad item id or genre flag: {line[:60]!r}", number)
        genres = [g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"]
        rows.append((int(fields[0]), fields[1], genres))
    return _items_frame(rows)


def read_movies(path: Path, *, sep: str, header: bool) -> pl.DataFrame:
    """Parse ``movies.dat`` (latin-1 or UTF-8, ``::``) or ``movies.csv`` (UTF-8, quoted titles)."""
    data = _text(path)
    if sep == ",":
        return _read_movies_csv(path, data)
    rows = []
    for number, line in enumerate(_legacy_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3 or not fields[0].isdigit():
            raise DataError(path, f"expected 'id::title::genres', got {line[:60]!r}", number)
        rows.append((int(fields[0]), fields[1], _genres(fields[2])))
    return _items_frame(rows)


def _read_movies_csv(path: Path, data: bytes) -> pl.DataFrame:
    import csv

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(path, f"not valid UTF-8 ({exc.reason})", line) from exc
    rows = []
    for number, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if number == 1 or not fields:
            continue
        if len(fields) != 3 or not fields[0].isdigit():
            raise DataError(path, f"expected 'movieId,title,genres', got {fields!r:.60}", number)
        rows.append((int(fields[0]), fields[1], _genres(fields[2])))
    return _items_frame(rows)


def _genres(field: str) -> list[str]:
    return [g for g in field.strip().split("|") if g and g != "(no genres listed)"]


def _items_frame(rows: list[tuple[int, str, list[str]]]) -> pl.DataFrame:
    ids, titles, genres = zip(*rows, strict=True) if rows else ((), (), ())
    table = pa.table([list(ids), list(titles), list(genres)], schema=ITEMS_SCHEMA)
    return pl.from_arrow(table)
