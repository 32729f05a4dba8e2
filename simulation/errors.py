"""The exception types of a simulation run that cannot start or finish."""

from __future__ import annotations


class RunError(RuntimeError):
    """A run that cannot start or finish, with the reason and what to do.

    `duet-sim run` prints it as one line: exit 2 when the run cannot start in its output
    (`OutputError`), 1 when preparing, training or the fleets fail (simulation/run_cmd.py).
    """


class OutputError(RunError):
    """The output cannot take this run: it holds another run, holds none to resume, holds a
    run of another scenario, or is a URI that cannot be an output. Raised before anything is
    prepared or started, so the caller (the CLI, a notebook) knows nothing needs cleaning."""
