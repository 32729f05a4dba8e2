"""duet-sim from Python: load a scenario, run it, read what it wrote (a notebook's entry point).

`duet-sim run` (simulation/run_cmd.py) is this module's `run` plus printing and exit codes,
so a notebook and the command line take one code path. Importing this module starts nothing
and imports neither torch nor Ray; `load` and `run` import them when called.

    >>> import polars as pl
    >>> from simulation import api
    >>> scenario = api.load("configs/scenarios/quickstart.yaml", {"fleet.devices": 100})
    >>> result = api.run(scenario, "runs/quick-100", num_cpus=4)
    >>> result.summary.methods["duet"].gain          # paired gain over base, 95% interval
    >>> result.sessions.group_by("method").agg(pl.col("auc").mean())
    >>> again = api.open_run("runs/quick-100")        # later, from the run directory
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Annotated, Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict

if TYPE_CHECKING:
    from simulation.run import Runner
    from simulation.scenario import Scenario


# ---- load ------------------------------------------------------------------------------------
END_OF_DOCUMENT = "...\n"  # what PyYAML ends a dumped scalar with


class _Dumper(yaml.SafeDumper):
    """Plain YAML, with paths as strings and tuples as lists: a notebook builds scenarios
    from them."""


_Dumper.add_multi_representer(PurePath, lambda d, p: d.represent_str(str(p)))
_Dumper.add_representer(tuple, lambda d, t: d.represent_list(list(t)))


def _yaml(value: Any, what: str, **style: Any) -> str:
    """``value`` as YAML text; a value YAML cannot hold is refused as the scenario's error.

    Raises:
        ScenarioError: naming ``what`` and the value.
    """
    from simulation.scenario_file import ScenarioError

    try:
        return yaml.dump(value, Dumper=_Dumper, sort_keys=False, **style)
    except yaml.YAMLError as exc:
        culprit = exc.args[-1] if exc.args else exc  # PyYAML: (reason, the object)
        raise ScenarioError([f"{what}: {culprit!r} is not plain YAML data"]) from None


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] | Mapping[str, Any] = (),
    plugins: Sequence[str] = (),
) -> Scenario:
    """A validated scenario, under the rules of `duet-sim validate` / `duet-sim run`.

    Args:
        source: a scenario file (a path, or a ``str`` without a newline), YAML text (a
            ``str`` with one), or the scenario as a dict. Text and dicts are checked as a
            file named ``text.yaml`` / ``dict.yaml`` would be (a dict as ``yaml.safe_dump``
            writes it, its keys in order), so error lines count in that text.
        overrides: ``key.sub=value`` strings, as ``--set`` takes them, or a mapping of dotted
            keys to values (``{"fleet.devices": 100, "methods": ["base", "duet"]}``),
            each value written as the YAML ``--set`` would parse.
        plugins: modules that register methods, policies or shift operators (``--plugin``).

    Raises:
        ScenarioError: every problem found (``.problems``, one line each), as the CLI
            prints them.

    >>> api.load("configs/scenarios/quickstart.yaml", ["fleet.devices=50"])
    >>> api.load(
    ...     {"version": 1, "name": "mini", "data": {...}, "model": {...},
    ...      "methods": ["base", "duet"], "fleet": {"devices": 10}},
    ...     overrides={"seed": 3},
    ... )
    """
    from simulation.scenario_file import load_scenario, parse_scenario

    settings = _override_strings(overrides)
    if isinstance(source, Mapping):
        text = _yaml(dict(source), "dict.yaml: <top>")
        return parse_scenario(text, "dict.yaml", settings, plugins)
    if isinstance(source, str) and "\n" in source:
        return parse_scenario(source, "text.yaml", settings, plugins)
    return load_scenario(source, settings, plugins)


def _override_strings(overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """``--set`` strings: a mapping's values written as YAML (flow style, one line), a
    single string taken as one override rather than as its characters."""
    from simulation.scenario_file import ScenarioError

    if isinstance(overrides, str):
        return [overrides]
    if not isinstance(overrides, Mapping):
        return list(overrides)
    settings = []
    for key, value in overrides.items():
        if not isinstance(key, str) or "=" in key:
            raise ScenarioError([f"override {key!r}: expected a dotted KEY.SUB"])
        text = _yaml(value, f"override {key!r}", default_flow_style=True, width=math.inf)
        settings.append(f"{key}={text.removesuffix(END_OF_DOCUMENT).strip()}")
    return settings


# ---- run -------------------------------------------------------------------------------------
def run(
    scenario: Scenario,
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = False,
    num_cpus: int | None = None,
    address: str | None = None,
    report: bool = True,
) -> RunResult:
    """Run ``scenario`` to its end (simulation/run.py's `Runner`): prepare the data and the
    checkpoints, start Ray and the generator, replay every device's sessions, write
    ``summary.json`` and ``report.md``, stop what it started. Ray's and Serve's own output
    goes to ``OUT/ray.log`` (its path is printed) unless ``verbose``.

    Args:
        scenario: from `load`.
        out: output folder or ``s3://`` URI. Default: the scenario's ``output.dir``.
        resume: continue the run in ``out``, skipping sessions already written.
        progress, verbose: show the progress bar; leave Ray's output on this process's.
        num_cpus: CPUs of a new local Ray. Default: all.
        address: Ray cluster to join. Default: ``$RAY_ADDRESS``, else a new local Ray.
        report: write ``report.md`` (without the ``report`` extra: a warning, no report).

    Raises:
        OutputError: ``out`` holds another run (pass ``resume=True`` or another ``out``)
            or no run to resume; nothing was started (simulation/errors.py).
        RunError, DataError: preparing, training or a fleet failed; rows already written
            are kept and ``resume=True`` continues.

    >>> result = api.run(scenario, "runs/try-1", num_cpus=4, progress=False)
    >>> result.summary.accounting.complete, result.summary.sessions_per_s
    """
    from simulation.ray_logs import LOG_NAME, ray_output_to
    from simulation.run import Runner

    runner = Runner(
        scenario,
        out,
        resume=resume,
        address=address,
        num_cpus=num_cpus,
        progress=progress,
        verbose=verbose,
    )
    runner.prepare()  # data and checkpoints: before Ray, on the terminal as usual
    if not verbose:
        print(f"ray and serve logs: {runner.out / LOG_NAME}", flush=True)
    with ray_output_to(runner.out / LOG_NAME, verbose) as console:
        runner.console = console
        try:
            runner.start()
            summary = runner.run()
        finally:
            runner.cleanup()
    return RunResult(runner.output, summary, _report(runner) if report else None)


def _report(runner: Runner) -> str | None:
    """The report drawn where the run works and published to its output: where it is."""
    from actors.storage.uris import join

    if report_run(runner.run_dir.report_dir()) is None:
        return None
    runner.run_dir.publish_report()
    return join(runner.output, "report.md")


def report_run(out: Path) -> Path | None:
    """Write the run's report.md (`duet-sim report`) and print its path. The report is a view
    of rows already on disk, so lacking the ``report`` extra (matplotlib) costs a warning, not
    the run: then None."""
    try:
        from simulation.report import write_report
    except ImportError as exc:
        print(
            f"duet-sim run: warning: no report.md ({exc}); pip install 'duet-sim[report]' "
            f"and run `duet-sim report {out}`",
            file=sys.stderr,
        )
        return None
    path = write_report(out)
    print(f"report: {path}")
    return path


def open_run(out: str | os.PathLike[str]) -> RunResult:
    """The result of a finished run, from its output folder (or URI).

    Raises:
        FileNotFoundError: ``out`` holds no ``summary.json`` (no run, or one that has not
            finished: ``run(..., resume=True)`` finishes it).

    >>> result = api.open_run("runs/quick-100")
    >>> result.summary.methods["finetune"].latency_s.p95
    """
    from actors.storage.uris import exists, join, read_bytes
    from simulation.run_dir import output_location

    location = output_location(out)
    summary = join(location, "summary.json")
    if not exists(summary):
        raise FileNotFoundError(f"{summary} not found: {location} holds no finished run")
    report = join(location, "report.md")
    return RunResult(location, json.loads(read_bytes(summary)), report if exists(report) else None)


# ---- results ---------------------------------------------------------------------------------
def _undefined_as_none(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


# summary.json writes NaN where a statistic is undefined (no session had an AUC, no pair to
# compare); None says so, and keeps two reads of one summary equal (NaN != NaN)
Number = Annotated[float | None, BeforeValidator(_undefined_as_none)]


class _Part(BaseModel):
    """A typed, read-only view of part of ``summary.json``; keys it does not name stay in
    `RunResult.raw`."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Gain(_Part):
    """A method minus base in the run's metric over the sessions both scored (pooled mean),
    with its 95% interval from a bootstrap over devices (simulation/paired_stats.py)."""

    mean: Number
    ci95: tuple[Number, Number]
    pairs: int
    devices: int


class Latency(_Part):
    """Seconds per session (simulated network and compute), over the method's sessions."""

    p50: Number
    p95: Number
    p99: Number
    mean: Number


class MethodSummary(_Part):
    """One method of the run (simulation/run_summary.py `method_stats`), with its gain."""

    sessions: int
    auc_mean: Number
    auc_std: Number
    accuracy_mean: Number
    accuracy_std: Number
    fallback: int  # sessions scored with the global classifier after a failed request
    latency_s: Latency
    requests_mean: Number
    gain: Gain | None  # over base, in `Summary.metric`; None for base itself


class Written(_Part):
    expected: int
    written: int


class Accounting(_Part):
    """Whether every expected (device, session, method) row was written, once."""

    complete: bool
    duplicates: int
    methods: dict[str, Written]

    @property
    def missing(self) -> dict[str, int]:
        """Rows still missing per method (those with none missing left out)."""
        return {
            m: w.expected - w.written for m, w in self.methods.items() if w.written < w.expected
        }


class Summary(_Part):
    """What a researcher reads first of ``summary.json``: the run, its accounting, and per
    method its sessions, mean metric, latency and paired gain over base."""

    run_id: str
    scenario: str
    dataset: str
    devices: int
    metric: Literal["auc", "accuracy"]  # what gains compare: AUC for clicks, accuracy for videos
    seed: int
    wall_s: float
    sessions_simulated: int
    sessions_per_s: Number
    accounting: Accounting
    methods: dict[str, MethodSummary]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Summary:
        """From a ``summary.json`` dict: its ``gains`` join each method's entry."""
        methods = {m: {**v, "gain": raw["gains"].get(m)} for m, v in raw["methods"].items()}
        return cls.model_validate({**raw, "methods": methods})


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A run's output, read back.

    Attributes:
        out (str): the output location (a folder, or the URI the run wrote to).
        raw (dict): the whole ``summary.json`` (shift phases, per-session-index means,
            request policies, latency comparison); not compared, as NaN != NaN.
        report (str | None): where ``report.md`` is, if it was written.
        summary (Summary): the typed view of ``raw``.
        sessions (pl.DataFrame): one row per (device, session, method), read on first use
            (actors/storage/rows.py columns, plus the ``fleet`` that wrote it).
    """

    out: str
    raw: dict[str, Any] = dataclasses.field(repr=False, compare=False)
    report: str | None = None
    summary: Summary = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summary", Summary.of(self.raw))

    @functools.cached_property
    def sessions(self) -> pl.DataFrame:
        from actors.storage.sink import read_sessions
        from actors.storage.uris import join

        return pl.DataFrame(read_sessions(join(self.out, "sessions")))
