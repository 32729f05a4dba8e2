"""`duet-sim train` option parsing: a count below its minimum (0 for most, -1 for
--finetune-steps) is refused by name before any work starts."""

from __future__ import annotations

import pytest

from ..conftest import cli_exit


@pytest.mark.parametrize(
    ("option", "value", "minimum"),
    [(o, v, 1) for o in ("--epochs", "--batch-size", "--np") for v in ("0", "-3")]
    + [("--finetune-steps", "-1", 0)],  # 0 steps is allowed: the base classifier unchanged
)
def test_counts_below_their_minimum_are_refused_by_name(tmp_path, capsys, option, value, minimum):
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        "synthetic-clicks",
        "--backbone",
        "din",
        "--method",
        "finetune",
        "--out",
        str(out),
        option,
        value,
    ]
    assert cli_exit(argv) == 2
    bound = f"{option}: Input should be greater than or equal to {minimum}"
    assert capsys.readouterr().err == f"duet-sim train: error: {bound}\n"
    assert not out.exists()  # nothing prepared or trained
