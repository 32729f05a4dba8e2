"""A new shift operator in one file: repeat consumption.

``repeat_clicks`` makes a device re-click what it already clicked: each click of a session
becomes, with probability ``rate``, a copy of one of the session's earlier clicks (its first
click stays). Music and news apps see it when a user replays favourites; a model that reads
the session's real-time clicks sees it too, since they shift the same way unless
``realtime: false``. docs/plugins.md walks through it.

    # a scenario:  plugins: [examples.plugins.repeat_clicks]
    #              shifts: [{operator: repeat_clicks, params: {rate: 0.5}, at_session: 1}]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipelines.shifts import SHIFTS, ClickSession, ShiftContext, ShiftOperator


def _repeat(clicks: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``clicks`` (T,) with each non-pad click after the first replaced, with probability
    ``rate``, by an earlier click of the same array (0 pads are kept)."""
    out = clicks.copy()
    real = np.flatnonzero(clicks != 0)
    for position in real[1:]:  # a session holds tens of clicks: a loop is cheap
        if rng.random() < rate:
            earlier = real[real < position]
            out[position] = out[earlier[int(rng.integers(len(earlier)))]]
    return out


@SHIFTS.register("repeat_clicks")
@dataclass(frozen=True)
class RepeatClicks(ShiftOperator):
    """Each click, with probability ``rate``, repeats one of the session's earlier clicks."""

    rate: float = 0.5
    realtime: bool = True  # the real-time window shifts the same way
    kind = "clicks"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
            raise TypeError(f"rate: expected a number in (0, 1], got {self.rate!r}")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate: expected a number in (0, 1], got {self.rate!r}")

    def apply(self, session: ClickSession, rng: np.random.Generator, ctx: ShiftContext):
        items = _repeat(session.items, self.rate, rng)
        realtime = _repeat(session.realtime, self.rate, rng) if self.realtime else session.realtime
        return replace(session, items=items, realtime=realtime)
