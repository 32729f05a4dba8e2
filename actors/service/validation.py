"""Request validation: every request is checked against its model before it reaches a
forward, and a refused one raises a `GeneratorError` naming the offending field.

One path: a single request is a columnar batch of one (`prepare` adds the batch axis and
calls `validate`), so both kinds of request obey the same rules and the same error names,
``items[3]`` in a batch and ``items`` (after the caller's prefix, ``requests[2].``) in a
single request. A checked request becomes a `Prepared` batch: its model, its samples as
tensors left-padded to the model's ``max_samples`` (S), and what each row uploaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actors.service.errors import (
    DtypeError,
    MalformedRequestError,
    NonFiniteError,
    SampleCountError,
    ShapeError,
    UnknownModelError,
    VocabularyError,
)
from actors.service.messages import DTYPES, GenerateBatchRequest, GenerateRequest
from actors.service.served import ServedModel

MAX_DEVICE_ID_CHARS = 128
SAMPLE_FIELDS = ("items", "pixels", "embeddings")  # a request gives at most one


@dataclass
class Prepared:
    """A validated columnar batch (a single request is a batch of one): its model, the inputs
    as tensors and what each row uploaded. Device-side encoding (`device_inputs`) is left to
    generation, so the single requests of one `@serve.batch` share a single call of it."""

    served: ServedModel
    device_ids: list[str]
    dtype: str
    mode: str  # "items" | "pixels" | "embeddings" | "none"
    tensor: torch.Tensor | None  # (D, S) int64 | (D, C, H, W) | (D, S, In) float32
    mask: torch.Tensor | None  # (D, S) bool, embeddings only
    upload_bytes: np.ndarray  # (D,) int64


@dataclass(frozen=True)
class _Rows:
    """How an error names its field: ``items[3]`` in a columnar batch, ``items`` (after the
    caller's prefix, ``requests[2].``) in a single request."""

    where: str
    single: bool
    count: int

    def name(self, field: str, row: int | None = None) -> str:
        suffix = "" if self.single or row is None else f"[{row}]"
        return f"{self.where}{field}{suffix}"

    def shape_error(self, field: str, single: str, batch: str, got: tuple[int, ...]) -> ShapeError:
        """A request's shape is given without the batch axis: a single request's is its own."""
        expect, got = (single, got[1:]) if self.single else (batch, got)
        name = self.name(field)
        return ShapeError(f"{name} must have shape {expect}, got {tuple(got)}", name)


def prepare(models: Mapping[str, ServedModel], req: GenerateRequest, where: str = "") -> Prepared:
    """Check one request against its model in ``models``; raises a `GeneratorError` naming
    the field."""
    if not isinstance(req, GenerateRequest):
        raise MalformedRequestError(
            f"expected a GenerateRequest, got {type(req).__name__}", where or "body"
        )
    _check_str(req.device_id, where + "device_id", MAX_DEVICE_ID_CHARS)
    samples = _one_row(req, where)
    batch = GenerateBatchRequest([req.device_id], req.model_key, dtype=req.dtype, **samples)
    prepared = validate(models, batch, where, single=True)
    if req.upload_bytes is not None:  # the wire size, when the ingress measured it
        prepared.upload_bytes = np.array([req.upload_bytes], np.int64)
    return prepared


def validate(
    models: Mapping[str, ServedModel],
    batch: GenerateBatchRequest,
    where: str = "",
    single: bool = False,
) -> Prepared:
    """Check a columnar batch against its model in ``models``; errors name the row
    (``items[3]``), or with ``single`` the field of the one request it stands for."""
    if not isinstance(batch, GenerateBatchRequest):
        raise MalformedRequestError(
            f"expected a GenerateBatchRequest, got {type(batch).__name__}", where or "body"
        )
    ids = batch.device_ids
    if not isinstance(ids, list | tuple) or not ids:
        raise MalformedRequestError("device_ids must be a non-empty list", "device_ids")
    for i, dev in enumerate(ids):
        _check_str(dev, f"device_ids[{i}]", MAX_DEVICE_ID_CHARS)
    _check_str(batch.model_key, where + "model_key", 256)
    served = models.get(batch.model_key)
    if served is None:
        raise UnknownModelError(
            f"unknown model key {batch.model_key!r}; served: {sorted(models)}", where + "model_key"
        )
    if not isinstance(batch.dtype, str) or batch.dtype not in DTYPES:
        raise DtypeError(
            f"dtype must be one of {sorted(DTYPES)}, got {batch.dtype!r}", where + "dtype"
        )
    rows = _Rows(where, single, len(ids))
    header = (served, list(ids), batch.dtype)
    if not served.conditioned:
        return Prepared(*header, "none", None, None, np.zeros(rows.count, np.int64))
    given = [n for n in SAMPLE_FIELDS if getattr(batch, n) is not None]
    accepted = ("items" if served.kind == "clicks" else "pixels", "embeddings")
    if len(given) != 1 or given[0] not in accepted:
        raise MalformedRequestError(
            f"{served.kind} model {served.key!r} needs exactly one of {accepted}, got {given}",
            where + (given[0] if len(given) == 1 else "samples"),
        )
    check = {"items": _check_items, "pixels": _check_pixels, "embeddings": _check_embeddings}
    return Prepared(*header, given[0], *check[given[0]](served, batch, rows))


# ---- per-field checks ---------------------------------------------------------------------
def _one_row(req: GenerateRequest, where: str) -> dict[str, np.ndarray]:
    """A single request's samples with the batch axis added: the columnar checks do the rest."""
    out = {}
    for name in SAMPLE_FIELDS:
        value = getattr(req, name)
        if value is None:
            continue
        kind = "int" if name == "items" else "float"
        if isinstance(value, list | tuple) and not value:  # [] has no dtype: an empty upload
            arr = np.zeros(0, np.int64 if kind == "int" else np.float32)
        else:
            arr = _as_array(value, where + name, kind)
        one_frame = name == "pixels" and arr.ndim == 4 and arr.shape[0] == 1  # its sample axis
        out[name] = arr if one_frame else arr[None]
    return out


def _check_str(value: Any, where: str, max_chars: int) -> None:
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise MalformedRequestError(
            f"{where} must be a non-empty string of at most {max_chars} characters, "
            f"got {value!r:.80}",
            where,
        )


def _as_array(value: Any, where: str, kind: str) -> np.ndarray:
    """Nested lists / numpy / torch -> numpy, refusing bools, strings and ragged lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ShapeError(f"{where} is not a rectangular array: {e}", where) from e
    ok = (
        np.issubdtype(arr.dtype, np.integer)
        if kind == "int"
        else (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
    )
    if arr.dtype == np.bool_ or not ok or _holds_bool(value):
        expect = "integers" if kind == "int" else "numbers"
        raise DtypeError(f"{where} must hold {expect}, got dtype {arr.dtype}", where)
    return arr


def _holds_bool(value: Any) -> bool:
    """JSON ``true`` in a list of numbers: numpy would silently read it as 1."""
    if isinstance(value, list | tuple):
        return any(_holds_bool(v) for v in value)
    return isinstance(value, bool | np.bool_)


def _rows_of(arr: np.ndarray, rows: _Rows, field: str) -> None:
    if arr.ndim < 1 or arr.shape[0] != rows.count:
        name = rows.name(field)
        raise ShapeError(
            f"{name} must have one row per device ({rows.count}), got shape {tuple(arr.shape)}",
            name,
        )


def _check_counts(served: ServedModel, counts: np.ndarray, rows: _Rows, field: str) -> None:
    S = served.max_samples
    for bad, rule in (
        (counts < 1, f"no real samples; send 1..{S}"),
        (counts > S, f"more than max_samples={S}"),
    ):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            name = rows.name(field, i)
            raise SampleCountError(f"{name} holds {int(counts[i])} samples: {rule}", name)


def _first_bad_row(bad: np.ndarray, rows: _Rows, field: str, error: type, rule: str) -> None:
    """Raise ``error`` naming the first row of ``bad`` (D,) that breaks ``rule``."""
    if bad.any():
        name = rows.name(field, int(np.flatnonzero(bad)[0]))
        raise error(f"{name} holds {rule}", name)


def _check_items(served: ServedModel, batch: GenerateBatchRequest, rows: _Rows):
    """(D, R) left-padded ids -> (D, S) ids, no mask (`device_inputs` makes it), 4 B per id."""
    arr = _as_array(batch.items, rows.name("items"), "int")
    _rows_of(arr, rows, "items")
    if arr.ndim != 2:
        raise rows.shape_error("items", "(R,)", "(D, R)", arr.shape)
    sequence = served.model.cfg.sequence
    assert sequence is not None, "a click model has a sequence config"
    num_items, S, R = sequence.num_items, served.max_samples, arr.shape[1]
    bad = ((arr < 0) | (arr > num_items)).any(1)
    _first_bad_row(bad, rows, "items", VocabularyError, f"ids outside 0..{num_items} (0 pads)")
    nonzero = arr != 0
    # real samples: from the first id on (an empty upload has none)
    counts = R - nonzero.argmax(1) if R else np.zeros(rows.count, np.int64)
    counts = np.where(nonzero.any(1), counts, 0)
    _check_counts(served, counts, rows, "items")
    ids = torch.zeros(rows.count, S, dtype=torch.int64)
    keep = min(R, S)  # columns left of R - S are all padding once counts <= S
    ids[:, S - keep :] = torch.from_numpy(arr[:, R - keep :].astype(np.int64))
    return ids, None, 4 * counts.astype(np.int64)


def _check_embeddings(served: ServedModel, batch: GenerateBatchRequest, rows: _Rows):
    """(D, R, In) with ``lengths`` -> (D, S, In) left-padded and its (D, S) mask."""
    arr = _as_array(batch.embeddings, rows.name("embeddings"), "float")
    _rows_of(arr, rows, "embeddings")
    In = served.input_dim
    if arr.ndim != 3 or arr.shape[2] != In:
        raise rows.shape_error("embeddings", f"(R, {In})", f"(D, R, {In})", arr.shape)
    R, S = arr.shape[1], served.max_samples
    if batch.lengths is None:
        lengths = np.full(rows.count, R)
    else:
        lengths = _as_array(batch.lengths, rows.name("lengths"), "int")
        if lengths.shape != (rows.count,) or (lengths > R).any():
            name = rows.name("lengths")
            raise ShapeError(f"{name} must have shape ({rows.count},) with values <= {R}", name)
    _check_counts(served, lengths, rows, "embeddings")
    keep = min(R, S)
    x = torch.zeros(rows.count, S, In)
    x[:, S - keep :] = torch.from_numpy(arr[:, R - keep :].astype(np.float32))
    starts = S - torch.from_numpy(lengths.astype(np.int64))[:, None]
    mask = torch.arange(S)[None] >= starts  # (D, S)
    x = x * mask[..., None]
    finite = torch.isfinite(x).flatten(1).all(1).numpy()
    _first_bad_row(~finite, rows, "embeddings", NonFiniteError, "NaN or inf")
    wire = arr.dtype.itemsize if arr.dtype in (np.float16, np.float32) else 4
    return x, mask, lengths.astype(np.int64) * In * wire


def _check_pixels(served: ServedModel, batch: GenerateBatchRequest, rows: _Rows):
    """(D, C, H, W) first frames, as float32; the upload is the float32 frame."""
    arr = _as_array(batch.pixels, rows.name("pixels"), "float")
    _rows_of(arr, rows, "pixels")
    shape = served.image_shape
    if tuple(arr.shape[1:]) != shape:
        raise rows.shape_error("pixels", f"(C, H, W) = {shape}", f"(D, *{shape})", arr.shape)
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr).reshape(rows.count, -1).all(1)
    _first_bad_row(~finite, rows, "pixels", NonFiniteError, "NaN or inf")
    return torch.from_numpy(arr), None, np.full(rows.count, arr[0].nbytes, np.int64)
