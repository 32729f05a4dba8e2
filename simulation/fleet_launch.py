"""The fleet actors of a run: one `FleetSetup` per fleet of the plan (simulation/fleet_plan.py),
the restartable actors started from them, and the wait for their end with a progress bar.
The setups carry plain values only; the scenario is read here, not in the actors."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from actors.devices.profiles import COMPUTE_TIERS, MB, NETWORK_CLASSES, NetworkClass
from simulation.artifacts import Artifacts
from simulation.fleet_plan import FleetPlan
from simulation.scenario import FleetSpec, Scenario

if TYPE_CHECKING:
    from actors.devices.config import FleetConfig
    from actors.devices.fleet_actor import FleetSetup
    from actors.devices.shifts import ShiftPlan

EPOCH_LEAD_S = 0.5  # from the last fleet ready to virtual time 0: the calls reaching them
POLL_S = 0.5  # progress refresh


def fleet_setups(
    scenario: Scenario,
    plan: FleetPlan,
    artifacts: Artifacts,
    *,
    run_id: str,
    model_keys: dict[str, str],
    sessions: str,
    app_name: str,
    exporter: Any = None,
) -> list[FleetSetup]:
    """One setup per fleet of ``plan``: the fleet's devices, and what every fleet shares.

    Args:
        model_keys (dict): ``"<backbone>/<name>"`` -> the generator deployment it asks
            (simulation/cluster.py `generator_models`).
        sessions (str): where the fleets write their rows.
        app_name (str): the generator's Serve app ("" when no method asks the cloud).
        exporter: the metrics exporter's actor handle; None when metrics are off.
    """
    from actors.devices.fleet_actor import FleetSetup
    from actors.observability.metrics_actor import ExporterClient
    from actors.storage.sink import FlushPolicy
    from duet.adaptation import FinetuneConfig

    s = scenario
    config = _fleet_config(s, run_id, artifacts.policies, model_keys)
    metrics = ExporterClient(exporter) if exporter is not None else None
    return [
        FleetSetup(
            index=index,
            config=config,
            devices=list(plan.devices_of(index)),
            prepared_dir=artifacts.data.location,
            checkpoints=artifacts.checkpoints,
            sessions_dir=sessions,
            finetune=FinetuneConfig(
                steps=s.model.train.finetune_steps, lr=s.model.train.finetune_lr, seed=s.seed
            ),
            shifts=_shift_plans(s),
            flush=s.output.config(FlushPolicy),
            app_name=app_name,
            metrics=metrics,
            on_rows=(metrics.record_part,) if metrics is not None else (),
            plugins=tuple(s.plugins),
            plugin_root=os.getcwd(),
        )
        for index in range(plan.fleets)
    ]


def _fleet_config(
    s: Scenario, run_id: str, policies: dict[str, Any], model_keys: dict[str, str]
) -> FleetConfig:
    """What every fleet of the run plays by: methods, policies, networks, the generator's
    batching and retries."""
    from actors.devices.config import FleetConfig, FleetPlay, RequestBatching, RetryPolicy

    g = s.generator
    networks = dict(NETWORK_CLASSES) | {
        name: NetworkClass(name, n.bandwidth_mb_s * MB, n.rtt_s)
        for name, n in s.fleet.network_classes.items()
    }
    return FleetConfig(
        run_id=run_id,
        scenario=s.name,
        dataset=s.data.dataset,
        methods=tuple(s.method_names),
        method_of=s.method_of,
        policies=policies,
        sessions_per_device=s.fleet.sessions_per_device,
        model_keys=model_keys,
        network_classes=networks,
        compute_tiers=COMPUTE_TIERS,
        seed=s.seed,
        play=s.fleet.config(FleetPlay),
        batching=g.config(RequestBatching),
        retry=g.config(RetryPolicy),
        pacing=s.fleet.arrivals.wall_per_virtual_s(),
    )


def _shift_plans(s: Scenario) -> list[ShiftPlan]:
    from actors.devices.shifts import ShiftPlan
    from pipelines.shifts import build_shift

    return [
        ShiftPlan(
            sh.operator,
            build_shift({"type": sh.operator, **sh.params}),
            sh.at_session,
            sh.until_session,
        )
        for sh in s.shifts
    ]


class FleetLaunch:
    """The fleet actors of one run: started from their setups, driven to their end with a
    progress bar, killed at cleanup."""

    def __init__(self) -> None:
        self.actors: list[Any] = []
        self.setups: list[Any] = []  # ObjectRefs of the actors' FleetSetup

    def start(self, setups: list[FleetSetup], spec: FleetSpec) -> None:
        import ray

        from actors.devices.fleet_actor import FleetActor

        # SPREAD: on a multi-node cluster losing one node loses few fleets (each restarts)
        options = {
            "max_restarts": spec.max_restarts,
            "max_task_retries": spec.max_restarts,
            "num_cpus": spec.num_cpus,
            "scheduling_strategy": "SPREAD",
        }
        for setup in setups:
            # held here for the run: a restarted actor is rebuilt from this object (ray#53727)
            self.setups.append(ray.put(setup))
            actor = FleetActor.options(**options)  # type: ignore[attr-defined]
            self.actors.append(actor.remote(self.setups[-1]))

    def drive(
        self,
        methods: list[str],
        total: int,
        *,
        desc: str,
        progress: bool,
        console: TextIO,
        on_poll: Callable[[], None] | None = None,
    ) -> list[Any]:
        """Run every fleet and wait for all of them, drawing sessions done out of ``total``;
        ``on_poll`` is called at every refresh (the cluster samples its replicas).

        Returns:
            the ObjectRefs of their `FleetProgress` (`ray.get` raises for a failed fleet).
        """
        import ray
        from tqdm.auto import tqdm

        refs = [a.run.remote(self._epoch()) for a in self.actors]
        with tqdm(
            total=total,
            unit="session",
            desc=desc,
            disable=not progress,
            dynamic_ncols=True,
            file=console,
        ) as bar:
            pending = refs
            while pending:
                _, pending = ray.wait(pending, timeout=POLL_S, num_returns=len(pending))
                self._show(bar, methods)
                if on_poll is not None:
                    on_poll()
        return refs

    def _epoch(self) -> float:
        """The wall clock of virtual time 0 every fleet paces its sessions from: once every
        fleet is built (its data and models loaded), so the first sessions are not late for
        a slow start. A fleet that failed to build fails its run, as before."""
        import ray

        ready = [a.progress.remote() for a in self.actors]
        ray.wait(ready, num_returns=len(ready))
        return time.time() + EPOCH_LEAD_S

    def _show(self, bar, methods: list[str]) -> None:
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
        for m in methods:
            n = sum(s.auc_n.get(m, 0) for s in stats)
            if n:
                auc[m] = f"{sum(s.auc_sum.get(m, 0.0) for s in stats) / n:.3f}"
        bar.set_postfix(auc, refresh=False)

    def stop(self) -> None:
        """Kill the fleet actors for good (no restart)."""
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
