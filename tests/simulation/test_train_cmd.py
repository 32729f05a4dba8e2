"""`duet-sim train` option parsing: a count below its minimum (0 for most, -1 for
--finetune-steps) is refused by name before any work starts."""

from __future__ import annotations

import pytest

from simulation.cli import main


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
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"argument {option}: must be >= {minimum}, got {value}" in capsys.readouterr().err
    assert not out.exists()  # nothing prepared or trained
