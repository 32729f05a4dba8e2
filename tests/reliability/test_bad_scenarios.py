"""The bad-scenario corpus: every broken scenario is refused by `duet-sim validate` and by
`duet-sim run` before anything starts (exit 2, no output directory, no Ray), each problem
naming the field's path and its line.

The corpus is the files in ``bad_scenarios/`` (each says what it expects on its first line,
``# expect: <field> (line n): <message>``) plus the cases a committed file cannot hold: a
huge file, bytes that are not UTF-8, a symlink out of the roots and a bad ``--set``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from simulation.cli import main
from simulation.scenario_file import MAX_SCENARIO_BYTES

from ..simulation.test_scenario import GOOD

ray = pytest.importorskip("ray")

CORPUS = sorted((Path(__file__).parent / "bad_scenarios").glob("*.yaml"))
# every problem line: "  <file>: <field path> (line n): message" (or "(override)" for --set)
PROBLEM = re.compile(r"^  \S+\.yaml: \S+ \((line \d+|override)\): \S")


def _huge(work: Path) -> tuple[Path, list[str]]:
    (work / "huge.yaml").write_text(GOOD + "# padding\n" * (MAX_SCENARIO_BYTES // 10))
    return work / "huge.yaml", []


def _latin1(work: Path) -> tuple[Path, list[str]]:
    (work / "latin1.yaml").write_bytes(
        GOOD.replace("name: t\n", "name: caf\xe9\n").encode("latin-1")
    )
    return work / "latin1.yaml", []


def _symlink(work: Path) -> tuple[Path, list[str]]:
    (work / "link").symlink_to("/etc")
    (work / "symlink.yaml").write_text(
        GOOD.replace("synthetic-clicks", "synthetic-clicks\n  prepared: link")
    )
    return work / "symlink.yaml", []


def _override(work: Path) -> tuple[Path, list[str]]:
    (work / "good.yaml").write_text(GOOD)
    return work / "good.yaml", ["fleet.devices=-3", "generator.timeout_s=soon"]


GENERATED: dict[str, tuple[Callable[[Path], tuple[Path, list[str]]], str]] = {
    "huge file": (_huge, "): more than 262144 bytes"),
    "not UTF-8": (_latin1, "<top> (line 2): not valid UTF-8"),
    "symlink out of the roots": (_symlink, "data.prepared (line 5): 'link' resolves to /etc"),
    "bad --set": (_override, "generator.timeout_s (override): Input should be a valid number"),
}
CASES = [pytest.param(p, id=p.stem) for p in CORPUS] + [pytest.param(k, id=k) for k in GENERATED]


def corpus_size() -> int:
    """Bad scenarios tried (docs/reliability.md, "Bad input")."""
    return len(CASES)


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """Relative paths in a scenario start at the working directory, the first root."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_corpus_covers_the_issue():
    names = {p.stem for p in CORPUS}
    assert (
        len(CASES) >= 15
        and {
            "billion-laughs",
            "path-escape-output",
            "absolute-outside-roots",
            "missing-data-dir",
            "unknown-shift-operator",
            "duplicate-keys",
            "wrong-version",
            "malformed-syntax",
            "empty",
            "non-mapping-top",
            "negative-devices",
            "unknown-key-top",
        }
        <= names
    )


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", CASES)
def test_refused_before_anything_starts(work, capsys, case, command):
    if isinstance(case, Path):
        path, overrides = case, []
        expected = case.read_text().splitlines()[0].removeprefix("# expect: ")
    else:
        make, expected = GENERATED[case]
        path, overrides = make(work)
    out = work / "out"
    args = [command, str(path), *(f"--set={o}" for o in overrides)]
    if command == "run":
        args += ["--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"duet-sim {command}: error:"
    assert any(expected in line for line in lines[1:]), (expected, lines)
    assert all(PROBLEM.match(line) for line in lines[1:]), lines
    assert not out.exists() and not (work / "runs").exists()
    assert not ray.is_initialized()
