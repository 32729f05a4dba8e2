"""argparse types shared by every `duet-sim` sub-command: a bad count or size is refused at
parse time (exit 2, the option named), before any data is read or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from typing import Any


def int_in_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An int option in ``[minimum, maximum]`` (no upper bound when ``maximum`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def finite_float(minimum: float, *, inclusive: bool = True) -> Callable[[str], float]:
    """A finite float option ``>= minimum`` (``> minimum`` when not ``inclusive``); NaN and
    infinities are refused, since they would train silently to garbage."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        if value < minimum or (value == minimum and not inclusive):
            bound = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"must be {bound} {minimum:g}, got {value:g}")
        return value

    return parse


def typed_overrides(option: str, defaults: Mapping[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> ``{key: value}``, each value typed like ``defaults[key]``
    (bools accept 1/0, true/false, yes/no).

    Raises:
        ValueError: an unknown key or a value of the wrong type, naming ``option``.
    """
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in defaults:
            raise ValueError(
                f"{option} {pair!r}: expected KEY=VALUE with KEY in {sorted(defaults)}"
            )
        kind = type(defaults[key])
        if kind is bool:
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(f"{option} {key}: expected true or false, got {raw!r}")
            out[key] = raw.lower() in ("1", "true", "yes")
            continue
        try:
            out[key] = kind(raw)
        except ValueError as exc:
            raise ValueError(f"{option} {key}: expected {kind.__name__}, got {raw!r}") from exc
    return out
