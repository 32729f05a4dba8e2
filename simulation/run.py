"""The `duet-sim run` recipe: scenario -> prepared data -> checkpoints -> Serve generator ->
fleet actors -> session rows and ``summary.json``.

The recipe shape of simulation/train_recipe.py: ``__init__`` cross-checks and fails early,
``setup`` prepares the artifacts and starts the cluster and the fleets, ``run`` drives them
with a progress bar, ``cleanup`` tears down what this run started. It composes the parts:

    simulation/run_dir.py       the output (a folder or a URI) and its bookkeeping files
    simulation/artifacts.py     the prepared data, the checkpoints, the fitted policies (no Ray)
    simulation/cluster.py       Ray, the metrics exporter and the generator's Serve app
    simulation/fleet_plan.py    which devices there are and which fleet hosts each
    simulation/fleet_launch.py  the fleet actors and the progress bar

Output directory (``OUT``):

    run.json          run id, expected sessions per method, status
    scenario.yaml     the scenario as resolved (defaults filled in, overrides applied)
    devices.parquet   one row per device: profile, fleet, active sessions, shift groups
    data/             the prepared dataset (unless ``data.prepared`` names one)
    models/           trained checkpoints ``<backbone>-<method>`` (unless given)
    sessions/         the session rows: ``fleet=K/part-NNNNN.parquet`` (actors/storage/sink.py)
    summary.json      simulation/run_summary.py
    report.md         simulation/report.py, with report/*.png (written by `duet-sim run`)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from simulation.artifacts import ArtifactDir, build_artifacts
from simulation.cluster import Cluster, generator_models
from simulation.errors import RunError
from simulation.fleet_launch import FleetLaunch, fleet_setups
from simulation.fleet_plan import plan_fleets
from simulation.run_dir import RunDirectory, output_location, scenario_location
from simulation.scenario import Scenario


class Runner:
    """Run one scenario into ``out``.

    Args:
        scenario (Scenario): the validated scenario.
        out (Path | None): output directory, the operator's choice (not confined to the
            scenario path roots). Default: the scenario's ``output.dir``.
        resume (bool): continue the run already in ``out``, skipping flushed sessions.
        address (str | None): Ray cluster to join. Default: ``$RAY_ADDRESS`` (set inside
            ``ray job submit``), else a new local Ray.
        num_cpus (int | None): CPUs of a new local Ray. Default: all.
        progress (bool): show the progress bar.
        verbose (bool): forward Ray workers' output to this process (Ray's default).

    Attributes:
        output (str): where the results go, a folder or a URI.
        out (Path): the local folder the run works in (the folder itself, or a staging
            folder for a URI): ``ray.log``, and the report drawn there.
        sessions (str): where the fleets write the session rows.
        run_dir, artifact_dir, cluster, fleet: the parts the recipe composes.

    Raises:
        RunError: ``out`` holds another run and ``resume`` is off, or ``resume`` is on and
            ``out`` holds no run or one of a different scenario.
    """

    def __init__(
        self,
        scenario: Scenario,
        out: str | Path | None = None,
        *,
        resume: bool = False,
        address: str | None = None,
        num_cpus: int | None = None,
        progress: bool = True,
        verbose: bool = False,
    ):
        self.scenario = scenario
        self.resume, self.address, self.num_cpus = resume, address, num_cpus
        self.progress, self.verbose = progress, verbose
        self.console: TextIO = sys.stdout  # our output while Ray runs (simulation/ray_logs.py)
        # the scenario's location was checked when it loaded; the operator's --out is here
        output = scenario_location(scenario.output.dir) if out is None else output_location(out)
        dump = scenario.model_dump(mode="json")
        self.run_dir = RunDirectory(output, dump, scenario.name, resume)
        self.run_id = self.run_dir.run_id
        self.output, self.out, self.sessions = output, self.run_dir.out, self.run_dir.sessions
        self.artifact_dir = ArtifactDir(self.out, output, progress=progress)
        self.cluster: Cluster | None = None
        self.fleet = FleetLaunch()

    # ---- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        self.prepare()
        self.start()

    def prepare(self) -> None:
        """Everything before Ray: the output directory, the data, the trained checkpoints."""
        self.run_dir.create()
        self.artifacts = build_artifacts(self.scenario, self.artifact_dir)

    def start(self) -> None:
        """Ray, the metrics exporter, the generator and the fleets (after :meth:`prepare`)."""
        s = self.scenario
        cells, model_keys = generator_models(
            self.artifacts.checkpoints, s.model_owner, list(s.policies)
        )
        self.cluster = Cluster(
            s.name,
            list(dict.fromkeys(sh.operator for sh in s.shifts)),
            s.metrics,
            s.generator,
            cells,
            self.run_id,
            address=self.address,
            num_cpus=self.num_cpus,
            verbose=self.verbose,
            console=self.console,
            plugins=s.plugins,
        )
        self.cluster.start()
        self._start_fleet(self.cluster, model_keys)

    def _start_fleet(self, cluster: Cluster, model_keys: dict[str, str]) -> None:
        from actors.devices.replay import recorded_starts, replayable_users

        prepared = self.artifacts.data.path
        users = replayable_users(prepared).tolist()
        recorded = recorded_starts(prepared) if self.scenario.fleet.arrivals.timestamps else None
        try:
            self.plan = plan_fleets(self.scenario, users, recorded)
        except ValueError as exc:
            raise RunError(f"{prepared}: {exc}") from None
        self.expected = self.plan.expected(self.scenario.method_names)
        self.run_dir.write_devices(self.plan)
        if not self.resume:
            self._write_run_json({"status": "running"})
        setups = fleet_setups(
            self.scenario,
            self.plan,
            self.artifacts,
            run_id=self.run_id,
            model_keys=model_keys,
            sessions=self.sessions,
            app_name=cluster.app_name or "",
            exporter=cluster.exporter,
        )
        self.fleet.start(setups, self.scenario.fleet)

    def _write_run_json(self, extra: dict[str, Any]) -> None:
        first = {
            "run_id": self.run_id,
            "scenario": self.scenario.name,
            "dataset": self.scenario.data.dataset,
            "methods": self.scenario.method_names,
            "devices": len(self.plan.devices),
            "expected_sessions": self.expected,
            "started": time.time(),
        }
        self.run_dir.write_run_json(extra, first)

    # ---- run -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Drive the fleets to the end, then write and return the summary."""
        import ray

        assert self.cluster is not None, "run() follows start()"
        start = time.perf_counter()
        refs = self.fleet.drive(
            self.scenario.method_names,
            sum(self.expected.values()) // len(self.expected),
            desc=self.scenario.name,
            progress=self.progress,
            console=self.console,
            on_poll=self.cluster.sample_replicas,
        )
        self.run_dir.write_replicas(self.cluster.replicas)
        self.cluster.close_exporter()
        try:
            results = ray.get(refs)
        except ray.exceptions.RayError as exc:  # a fleet failed past its restarts
            self._write_run_json({"status": "failed", "error": str(exc).splitlines()[0]})
            raise RunError(
                f"a fleet actor failed ({type(exc).__name__}); rows on disk are kept, "
                f"`--resume` continues: {str(exc).splitlines()[0]}"
            ) from exc
        wall_s = time.perf_counter() - start
        summary = self._summary(wall_s, sum(r.sessions for r in results))
        self._write_run_json(
            {
                "status": "finished" if summary["accounting"]["complete"] else "incomplete",
                "finished": time.time(),
            }
        )
        return summary

    def _summary(self, wall_s: float, simulated: int) -> dict[str, Any]:
        from simulation.run_summary import summarize

        s = self.scenario
        rows, devices = self.run_dir.read_rows()
        summary = {
            "run_id": self.run_id,
            "scenario": s.name,
            "dataset": s.data.dataset,
            "devices": len(self.plan.devices),
            "wall_s": wall_s,
            "sessions_simulated": simulated,
            "sessions_per_s": simulated / wall_s if wall_s > 0 else float("nan"),
            **summarize(
                rows,
                devices,
                self.expected,
                [sh.model_dump() for sh in s.shifts],
                s.seed,
                metric="auc" if s.kind == "clicks" else "accuracy",
                references=s.policy_references,
            ),
            "request_gates": self.artifact_dir.gate_reports(),
        }
        self.run_dir.write_summary(summary)
        return summary

    # ---- cleanup -------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop the fleets and the generator of this run; stop Ray only if this run started it."""
        self.fleet.stop()
        if self.cluster is not None:
            self.cluster.stop()
