"""The `duet-sim run` recipe: scenario -> prepared data -> checkpoints -> Serve generator ->
fleet actors -> session rows and ``summary.json``.

One class in the torchtune recipe shape (STYLE item 4): ``__init__`` cross-checks and fails
early, ``setup`` prepares data, models, Ray, the metrics exporter, the generator and the fleets,
``run`` drives them with a progress bar, ``cleanup`` tears down what this run started. It is the
only code that reads the scenario; everything below it gets plain values.

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

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from actors.devices.profiles import COMPUTE_TIERS, MB, NETWORK_CLASSES, DeviceProfile, NetworkClass
from simulation.artifacts import ArtifactDir, build_artifacts
from simulation.cluster import Cluster, generator_models
from simulation.errors import RunError
from simulation.fleet_plan import plan_fleets
from simulation.run_dir import RunDirectory, output_location, scenario_location
from simulation.scenario import Scenario

POLL_S = 0.5  # progress refresh


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
        self.actors: list[Any] = []
        self._setups: list[Any] = []  # ObjectRefs of the actors' FleetSetup

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
        cells, self.model_keys = generator_models(
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
        )
        self.cluster.start()
        self._setup_fleet(self.cluster)

    def _setup_fleet(self, cluster: Cluster) -> None:
        import ray

        from actors.devices.fleet_actor import FleetActor
        from actors.devices.replay import replayable_users

        prepared = self.artifacts.data.path
        try:
            self.plan = plan_fleets(self.scenario, replayable_users(prepared).tolist())
        except ValueError as exc:
            raise RunError(f"{prepared}: {exc}") from None
        self.profiles = list(self.plan.devices)
        self.expected = self.plan.expected(self.scenario.method_names)
        self.run_dir.write_devices(self.plan)
        if not self.resume:
            self._write_run_json({"status": "running"})
        spec = self.scenario.fleet
        # SPREAD: on a multi-node cluster losing one node loses few fleets (each restarts)
        options = {
            "max_restarts": spec.max_restarts,
            "max_task_retries": spec.max_restarts,
            "num_cpus": spec.num_cpus,
            "scheduling_strategy": "SPREAD",
        }
        for k in range(self.plan.fleets):
            # held here for the run: a restarted actor is rebuilt from this object (ray#53727)
            setup = self._fleet_setup(cluster, k, list(self.plan.devices_of(k)))
            self._setups.append(ray.put(setup))
            actor = FleetActor.options(**options)  # type: ignore[attr-defined]
            self.actors.append(actor.remote(self._setups[-1]))

    def _fleet_setup(self, cluster: Cluster, index: int, devices: list[DeviceProfile]):
        from actors.devices.fleet import FleetConfig, RetryPolicy, ShiftPlan
        from actors.devices.fleet_actor import FleetSetup
        from actors.observability.metrics_actor import ExporterClient
        from duet.finetune import FinetuneConfig
        from pipelines.shifts import build_shift

        s, g = self.scenario, self.scenario.generator
        networks = dict(NETWORK_CLASSES) | {
            name: NetworkClass(name, n.bandwidth_mb_s * MB, n.rtt_s)
            for name, n in s.fleet.network_classes.items()
        }
        config = FleetConfig(
            run_id=self.run_id,
            scenario=s.name,
            dataset=s.data.dataset,
            methods=tuple(s.method_names),
            method_of=s.method_of,
            policies=s.policies,
            gates=self.artifacts.gates,
            sessions_per_device=s.fleet.sessions_per_device,
            model_keys=self.model_keys,
            network_classes=networks,
            compute_tiers=COMPUTE_TIERS,
            seed=s.seed,
            max_in_flight=s.fleet.max_in_flight,
            devices_alive=s.fleet.devices_alive,
            pace=s.fleet.pace,
            dtype=g.dtype,
            batch_wait_s=g.batch_wait_s,
            max_batch_devices=g.max_batch_devices,
            retry=RetryPolicy(g.timeout_s, g.retries, g.backoff_s, deadline_s=g.deadline_s),
        )
        shifts = [
            ShiftPlan(
                sh.operator,
                build_shift({"type": sh.operator, **sh.params}),
                sh.at_session,
                sh.until_session,
            )
            for sh in s.shifts
        ]
        metrics = ExporterClient(cluster.exporter) if cluster.exporter is not None else None
        return FleetSetup(
            index=index,
            config=config,
            devices=devices,
            prepared_dir=self.artifacts.data.location,
            checkpoints=self.artifacts.checkpoints,
            sessions_dir=self.sessions,
            finetune=FinetuneConfig(
                steps=s.model.finetune_steps, lr=s.model.finetune_lr, seed=s.seed
            ),
            shifts=shifts,
            flush_rows=s.output.flush_rows,
            flush_interval_s=s.output.flush_interval_s,
            app_name=cluster.app_name or "",
            metrics=metrics,
            on_rows=(metrics.record_part,) if metrics is not None else (),
            plugins=tuple(s.plugins),
            plugin_root=os.getcwd(),
        )

    def _write_run_json(self, extra: dict[str, Any]) -> None:
        first = {
            "run_id": self.run_id,
            "scenario": self.scenario.name,
            "dataset": self.scenario.data.dataset,
            "methods": self.scenario.method_names,
            "devices": len(self.profiles),
            "expected_sessions": self.expected,
            "started": time.time(),
        }
        self.run_dir.write_run_json(extra, first)

    # ---- run -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Drive the fleets to the end, then write and return the summary."""
        import ray
        from tqdm.auto import tqdm

        start = time.perf_counter()
        refs = [a.run.remote() for a in self.actors]
        total = sum(self.expected.values()) // len(self.expected)
        with tqdm(
            total=total,
            unit="session",
            desc=self.scenario.name,
            disable=not self.progress,
            dynamic_ncols=True,
            file=self.console,
        ) as bar:
            pending = refs
            while pending:
                _, pending = ray.wait(pending, timeout=POLL_S, num_returns=len(pending))
                self._show(bar)
        assert self.cluster is not None, "run() follows start()"
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

    def _show(self, bar) -> None:
        """Sessions done (this run + already on disk), rate, running AUC per method."""
        import ray

        refs = [a.progress.remote() for a in self.actors]
        ready, _ = ray.wait(refs, timeout=POLL_S, num_returns=len(refs))
        stats = []
        for ref in ready:  # a restarting fleet answers nothing this time
            try:
                stats.append(ray.get(ref))
            except ray.exceptions.RayError:
                continue
        done = sum(s.done for s in stats)
        bar.update(max(0, done - bar.n))
        auc = {}
        for m in self.scenario.method_names:
            n = sum(s.auc_n.get(m, 0) for s in stats)
            if n:
                auc[m] = f"{sum(s.auc_sum.get(m, 0.0) for s in stats) / n:.3f}"
        bar.set_postfix(auc, refresh=False)

    def _summary(self, wall_s: float, simulated: int) -> dict[str, Any]:
        from simulation.run_summary import summarize

        rows, devices = self.run_dir.read_rows()
        shifts = [s.model_dump() for s in self.scenario.shifts]
        summary = {
            "run_id": self.run_id,
            "scenario": self.scenario.name,
            "dataset": self.scenario.data.dataset,
            "devices": len(self.profiles),
            "wall_s": wall_s,
            "sessions_simulated": simulated,
            "sessions_per_s": simulated / wall_s if wall_s > 0 else float("nan"),
            **summarize(
                rows,
                devices,
                self.expected,
                shifts,
                self.scenario.seed,
                metric="auc" if self.scenario.kind == "clicks" else "accuracy",
                references=self.scenario.policy_references,
            ),
            "request_gates": self.artifact_dir.gate_reports(),
        }
        self.run_dir.write_summary(summary)
        return summary

    # ---- cleanup -------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop the fleets and the generator of this run; stop Ray only if this run started it."""
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        if self.cluster is not None:
            self.cluster.stop()
