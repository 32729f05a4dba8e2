"""The one exception type of a simulation run that cannot start or finish."""

from __future__ import annotations


class RunError(RuntimeError):
    """A run that cannot start or finish, with the reason and what to do.

    `duet-sim run` prints it as one line: exit 2 when the run cannot start in its output
    directory, 1 when preparing, training or the fleets fail (simulation/run_cmd.py).
    """
