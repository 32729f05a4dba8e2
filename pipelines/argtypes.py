"""argparse types shared by every `duet-sim` sub-command: a bad count or size is refused at
parse time (exit 2, the option named), before any data is read or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


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
