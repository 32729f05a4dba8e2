"""What a run needs running on Ray before its fleets start: Ray itself, the metrics exporter
and the generator's Serve app. `Cluster` starts what is missing and stops what it started, so
a run inside a running Ray (``ray job submit``, a test's Ray) leaves that Ray as it found it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from simulation.errors import RunError
from simulation.scenario import GeneratorSpec, MetricsSpec

log = logging.getLogger(__name__)


def generator_models(
    checkpoints: Mapping[str, Mapping[str, str]],
    owner: Mapping[str, str],
    generated: Sequence[str],
) -> tuple[dict[str, str], dict[str, str]]:
    """Every generated name asks the model of its owner (`Scenario.model_owner`): one
    deployment per checkpoint.

    Returns:
        (cells, model_keys): ``"<backbone>/<owner>"`` -> checkpoint location, the generator's
        deployments; ``"<backbone>/<name>"`` -> the deployment that name asks.
    """
    cells = {
        f"{b}/{owner[m]}": ckpts[m]
        for b, ckpts in checkpoints.items()
        for m in ckpts
        if m in generated
    }
    model_keys = {f"{b}/{m}": f"{b}/{owner[m]}" for b in checkpoints for m in generated}
    return cells, model_keys


class Cluster:
    """Ray, the metrics exporter and the generator app of one run, as a context manager.

    Args:
        name (str): the scenario's name, the exporter's label.
        operators (list[str]): the shift operators, the exporter's labels.
        metrics (MetricsSpec): where the exporter listens, if it is on.
        generator (GeneratorSpec): the Serve app's replicas and HTTP proxy.
        cells (dict): the generator's deployments (`generator_models`); none: no app.
        run_id (str): the run's id; the Serve app is named after it.
        address (str | None): Ray cluster to join. Default: ``$RAY_ADDRESS``, else a new
            local Ray.
        num_cpus (int | None): CPUs of a new local Ray. Default: all.
        verbose (bool): forward Ray workers' output to this process.
        console (TextIO): where our lines go while Ray runs (simulation/ray_logs.py).
        plugins (list[str]): the run's plugin modules, which each replica imports before it
            loads a checkpoint of a plugin's method.

    Raises:
        RunError: the metrics port is taken (on `start`).
    """

    def __init__(
        self,
        name: str,
        operators: list[str],
        metrics: MetricsSpec,
        generator: GeneratorSpec,
        cells: dict[str, str],
        run_id: str,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        verbose: bool = False,
        console: TextIO = sys.stdout,
        plugins: Sequence[str] = (),
    ):
        self.name, self.operators = name, operators
        self.metrics, self.generator, self.cells = metrics, generator, cells
        self.address, self.num_cpus, self.verbose = address, num_cpus, verbose
        self.console, self.plugins = console, list(plugins)
        self.run_id = run_id
        self.app_name: str | None = None  # set once the app is deploying
        self.exporter: Any = None  # the metrics exporter's actor handle, when metrics are on
        self.replicas: list[tuple[float, int]] = []  # (wall clock, running replicas) samples
        self._started_ray = False

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Ray, then the exporter, then the generator: a metrics port that is taken stops
        the run before the generator is deployed."""
        self._start_ray()
        self._start_metrics()
        self._deploy_generator()

    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        address = self.address or os.environ.get("RAY_ADDRESS")
        quiet = {"log_to_driver": self.verbose}  # workers' logs stay in Ray's session dir
        if address:
            ray.init(address=address, **quiet)
        else:
            # "local": a new Ray even when a `ray start` cluster runs on this machine, which
            # ray.init() would otherwise join (and refuse num_cpus for)
            ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **quiet)
        self._started_ray = True

    def _start_metrics(self) -> None:
        """Start the exporter (``metrics.enabled``) before anything else runs on Ray."""
        from actors.observability.metrics_actor import start_exporter

        spec = self.metrics
        try:
            self.exporter = start_exporter(spec, self.name, self.operators)
        except OSError as exc:
            raise RunError(
                f"{exc}; is another run exporting there? Choose a free port with "
                "--set metrics.port=N or turn metrics off with "
                "--set metrics.enabled=false"
            ) from exc
        if self.exporter is not None:
            print(f"metrics at http://{spec.host}:{spec.port}/metrics", file=self.console)

    def _deploy_generator(self) -> None:
        from ray import serve

        from actors.service.serve_app import APP_NAME, build_app

        if not self.cells:
            return
        spec = self.generator
        if spec.http_port is None:
            serve.start(proxy_location="Disabled")
        else:
            serve.start(http_options={"host": spec.http_host, "port": spec.http_port})
        self.app_name = f"{APP_NAME}-{self.run_id}"
        scaling = (
            {"autoscaling_config": spec.autoscaling.serve_config()}
            if spec.autoscaling is not None
            else {"num_replicas": spec.replicas}
        )
        args = {
            "checkpoints": self.cells,
            **scaling,
            "num_cpus": spec.num_cpus,
            "plugins": self.plugins,
            "plugin_root": os.getcwd(),  # where the driver found them (ray job's working dir)
        }
        print(
            f"deploying the generator ({', '.join(self.cells)}) as Serve app {self.app_name}",
            file=self.console,
        )
        serve.run(
            build_app(args),
            name=self.app_name,
            route_prefix=None if spec.http_port is None else f"/{self.app_name}",
            logging_config={"enable_access_log": False},
        )

    def sample_replicas(self) -> None:
        """Record how many generator replicas run now (Serve's controller status), for the
        replica count over time and replica-seconds (the generator's cost)."""
        from ray import serve

        if self.app_name is None:
            return
        app = serve.status().applications.get(self.app_name)
        if app is None:
            return
        running = sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())
        self.replicas.append((time.time(), running))

    def close_exporter(self) -> None:
        """Let Prometheus scrape the final values (twice, see `MetricsServer.close`), then stop
        serving; call it once every fleet drained its calls."""
        import ray

        if self.exporter is None:
            return
        if not ray.get(self.exporter.close.remote()):
            log.warning(
                "metrics: Prometheus did not scrape the final values before the exporter "
                "closed (is it scraping %s:%d?)",
                self.metrics.host,
                self.metrics.port,
            )

    def stop(self) -> None:
        """Stop the exporter and the generator app; stop Ray only if this cluster started it."""
        import ray

        if not ray.is_initialized():
            return
        if self.exporter is not None:  # named: a later run in this Ray takes the name again
            ray.kill(self.exporter)
        if self.app_name is not None:
            from ray import serve

            serve.delete(self.app_name)
        if self._started_ray:
            if not self.address and not os.environ.get("RAY_ADDRESS"):
                from ray import serve

                serve.shutdown()
            ray.shutdown()
