"""The requests the generator refuses: one `GeneratorError` subclass per reason, each with
the HTTP status the ingress (actors/service/serve_app.py) answers with and the request field
it names; through a Ray handle the same exception reaches the caller.
"""

from __future__ import annotations

from typing import Any


class GeneratorError(Exception):
    """A request the generator refuses. ``field`` names the offending request field;
    ``status`` is the HTTP status the ingress answers with."""

    status = 400

    def __init__(self, message: str, field: str = "body"):
        super().__init__(message)
        self.message, self.field = message, field

    def __reduce__(self):  # keep (message, field) across Ray's pickling of exceptions
        return (type(self), (self.message, self.field))

    def to_json(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "field": self.field, "message": self.message}


class MalformedRequestError(GeneratorError):
    """Unparseable body, missing or unknown fields, wrong JSON types."""

    status = 400


class UnknownModelError(GeneratorError):
    status = 422


class ShapeError(GeneratorError):
    status = 422


class DtypeError(GeneratorError):
    status = 422


class VocabularyError(GeneratorError):
    """Item ids outside 0..num_items (0 is padding)."""

    status = 422


class NonFiniteError(GeneratorError):
    status = 422


class SampleCountError(GeneratorError):
    """No real samples, or more than the model's ``max_samples``."""

    status = 422


class BodyTooLargeError(GeneratorError):
    status = 413


class UnsupportedMediaTypeError(GeneratorError):
    status = 415
