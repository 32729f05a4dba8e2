"""`duet-sim train` option parsing: a count of 0 is refused by name before any work starts,
and an option left out falls back to the dataset kind's default."""

from __future__ import annotations

import pytest

from simulation.cli import main


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--np"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_zero_or_negative_counts_are_refused_by_name(tmp_path, capsys, option, value):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "synthetic-clicks", "--backbone", "din", "--method", "duet",
            "--out", str(out), option, value]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"argument {option}: must be >= 1, got {value}" in capsys.readouterr().err
    assert not out.exists()  # nothing prepared or trained
