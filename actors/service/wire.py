"""HTTP encodings of generator requests and responses: JSON, and a compact binary frame.

JSON (``application/json``)
    request:  {"device_id": str, "model_key": str, "dtype": "float32"|"float16",
               one of "items": [int], "pixels": [[[float]]], "embeddings": [[float]]}
              or {"requests": [request, ...]} for a client-side batch.
    response: {"device_id", "model_key", "model_version", "dtype", "upload_bytes",
               "download_bytes", "batch_size", "batch_generate_s",
               "params": [{"weight": [[...]], "bias": [...]}, ...]}
              or {"responses": [response, ...]}.
    error:    {"error": class name, "field": request field, "message": str}, status 4xx.

Binary frame (``application/x-duet-frame``), one request or one response, no pickle:

    offset  size  field
    0       4     magic b"DUT1"
    4       4     H, header length in bytes, uint32 little-endian
    8       H     header: a UTF-8 JSON object (the JSON fields above except arrays) plus
                  "tensors": [{"name": str, "dtype": str, "shape": [int, ...]}, ...]
    8+H     ...   each tensor's bytes in header order: C order, little-endian, no padding;
                  the frame ends exactly after the last tensor

    request tensors: one of "items" (int32 | int64), "pixels" / "embeddings"
    (float32 | float16), or none for unconditioned models.
    response tensors: "w0", "b0", "w1", "b1", ... (the response's dtype), layer by layer.

A gru4rec device's float16 parameters are 4,224 bytes of tensors plus a ~400-byte
header (4.6 kB); the same response in JSON is about 10x larger (5x for float32).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from actors.service.errors import GeneratorError, MalformedRequestError
from actors.service.messages import GenerateRequest, GenerateResponse

JSON_TYPE = "application/json"
FRAME_TYPE = "application/x-duet-frame"
MAGIC = b"DUT1"
FRAME_DTYPES = {"int32": "<i4", "int64": "<i8", "float16": "<f2", "float32": "<f4"}
MAX_TENSORS = 64
_LEN = struct.Struct("<I")


# ---- frames ---------------------------------------------------------------------------------
def encode_frame(header: dict[str, Any], tensors: dict[str, np.ndarray]) -> bytes:
    """Pack a header and named arrays into one frame (layout in the module docstring)."""
    specs, payload = [], []
    for name, arr in tensors.items():
        dtype = np.dtype(arr.dtype).name
        if dtype not in FRAME_DTYPES:
            raise TypeError(
                f"tensor {name!r}: dtype must be one of {sorted(FRAME_DTYPES)}, got {dtype}"
            )
        specs.append({"name": name, "dtype": dtype, "shape": list(arr.shape)})
        payload.append(np.ascontiguousarray(arr, dtype=FRAME_DTYPES[dtype]).tobytes())
    head = json.dumps({**header, "tensors": specs}, separators=(",", ":")).encode()
    return b"".join([MAGIC, _LEN.pack(len(head)), head, *payload])


def decode_frame(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Unpack a frame; every inconsistency raises `MalformedRequestError` naming the part."""
    if len(body) < 8 or body[:4] != MAGIC:
        raise MalformedRequestError(
            f"a frame starts with {MAGIC!r} and a uint32 header length", "body"
        )
    (size,) = _LEN.unpack_from(body, 4)
    if size > len(body) - 8:
        raise MalformedRequestError(
            f"header length {size} exceeds the {len(body) - 8} bytes left", "header"
        )
    header = _parse_json(body[8 : 8 + size], "header")
    if not isinstance(header, dict) or not isinstance(header.get("tensors", []), list):
        raise MalformedRequestError("header must be a JSON object with a 'tensors' list", "header")
    specs = header.pop("tensors", [])
    if len(specs) > MAX_TENSORS:
        raise MalformedRequestError(
            f"at most {MAX_TENSORS} tensors, got {len(specs)}", "header.tensors"
        )
    tensors, offset = {}, 8 + size
    for i, spec in enumerate(specs):
        name, dtype, shape = _check_spec(spec, f"header.tensors[{i}]")
        nbytes = math.prod(shape) * np.dtype(FRAME_DTYPES[dtype]).itemsize
        if nbytes > len(body) - offset:
            raise MalformedRequestError(
                f"tensor {name!r} needs {nbytes} bytes, {len(body) - offset} left",
                f"header.tensors[{i}].shape",
            )
        arr = np.frombuffer(body, FRAME_DTYPES[dtype], math.prod(shape), offset).reshape(shape)
        tensors[name] = arr.astype(arr.dtype.newbyteorder("="))  # native order, writable copy
        offset += nbytes
    if offset != len(body):
        raise MalformedRequestError(
            f"{len(body) - offset} trailing bytes after the last tensor", "body"
        )
    return header, tensors


def _check_spec(spec: Any, where: str) -> tuple[str, str, tuple[int, ...]]:
    ok = isinstance(spec, dict) and isinstance(spec.get("name"), str)
    shape = spec.get("shape") if ok else None
    if not ok or spec.get("dtype") not in FRAME_DTYPES or not isinstance(shape, list):
        raise MalformedRequestError(
            f"each tensor spec needs name (str), dtype in {sorted(FRAME_DTYPES)}, shape (list); "
            f"got {spec!r:.120}",
            where,
        )
    if len(shape) > 4 or not all(type(n) is int and 0 <= n < 2**31 for n in shape):
        raise MalformedRequestError(
            f"shape must be <= 4 non-negative ints, got {shape!r:.80}", where + ".shape"
        )
    return spec["name"], spec["dtype"], tuple(shape)


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise MalformedRequestError(f"{where} is not valid UTF-8 JSON: {e}", where) from e


# ---- requests -------------------------------------------------------------------------------
def decode_request(body: bytes, content_type: str) -> list[GenerateRequest] | GenerateRequest:
    """A body -> one request, or a list for a JSON ``{"requests": [...]}`` batch."""
    if content_type == FRAME_TYPE:
        header, tensors = decode_frame(body)
        unknown = sorted(set(tensors) - {"items", "pixels", "embeddings"})
        if unknown:
            raise MalformedRequestError(f"unknown tensor(s) {unknown}", "header.tensors")
        req = GenerateRequest.from_json(header | tensors)
        req.upload_bytes = sum(t.nbytes for t in tensors.values())
        return req
    doc = _parse_json(body, "body")
    if isinstance(doc, dict) and "requests" in doc:
        reqs = doc["requests"]
        if set(doc) != {"requests"} or not isinstance(reqs, list) or not reqs:
            raise MalformedRequestError(
                'a batch is {"requests": [request, ...]} with >= 1 request', "requests"
            )
        return [GenerateRequest.from_json(r, f"requests[{i}].") for i, r in enumerate(reqs)]
    return GenerateRequest.from_json(doc)


def encode_request(req: GenerateRequest, content_type: str = FRAME_TYPE) -> bytes:
    """Client side: one request as a frame or JSON."""
    header = {"device_id": req.device_id, "model_key": req.model_key, "dtype": req.dtype}
    arrays = {
        n: np.asarray(getattr(req, n))
        for n in ("items", "pixels", "embeddings")
        if getattr(req, n) is not None
    }
    if content_type == FRAME_TYPE:
        return encode_frame(header, arrays)
    return json.dumps(header | {n: a.tolist() for n, a in arrays.items()}).encode()


# ---- responses ------------------------------------------------------------------------------
def encode_response(resp: GenerateResponse, content_type: str) -> bytes:
    if content_type == FRAME_TYPE:
        header = {k: v for k, v in resp.to_json().items() if k != "params"}  # no arrays in JSON
        tensors = {
            f"{kind}{n}": arr
            for n, (w, b) in enumerate(resp.params)
            for kind, arr in (("w", w), ("b", b))
        }
        return encode_frame(header, tensors)
    return json.dumps(resp.to_json()).encode()


def decode_response(body: bytes, content_type: str) -> GenerateResponse | list[GenerateResponse]:
    """Client side: the inverse of `encode_response` (and of a JSON batch response)."""
    if content_type.startswith(FRAME_TYPE):
        header, tensors = decode_frame(body)
        layers = [(tensors[f"w{n}"], tensors[f"b{n}"]) for n in range(len(tensors) // 2)]
        return GenerateResponse(**header, params=layers)
    doc = json.loads(body)
    if "responses" in doc:
        return [_response_from_json(r) for r in doc["responses"]]
    return _response_from_json(doc)


def _response_from_json(doc: dict[str, Any]) -> GenerateResponse:
    dt = np.dtype(doc["dtype"])
    layers = [(np.asarray(p["weight"], dt), np.asarray(p["bias"], dt)) for p in doc.pop("params")]
    return GenerateResponse(**doc, params=layers)


def error_body(err: GeneratorError) -> bytes:
    return json.dumps(err.to_json()).encode()
