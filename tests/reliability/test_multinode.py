"""A local multi-node Ray cluster (`ray.cluster_utils.Cluster`: a head and two worker nodes,
each its own raylet): fleets are spread across nodes, one worker node is removed mid-run,
its fleets restart on the nodes left, and the run still writes every expected session once."""

from __future__ import annotations

import polars as pl
import pytest

from simulation.run import Runner
from simulation.scenario_file import load_scenario

from .faults import PACED_FLEET, Fault, assert_accounting, free_port, paced_scenario, parts

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.ray]  # three raylets on two cores: about 75 s here

# four fleets over three nodes, sessions for long enough that a node can go mid-run
FLEET = PACED_FLEET | {
    "actors": 4,
    "sessions_per_device": 6,
    "arrivals": PACED_FLEET["arrivals"] | {"mean_gap_s": 1.0},
}


@pytest.fixture
def cluster():
    """Head (2 CPUs: the driver's node, Serve's controller) and two 1-CPU workers, with free
    ports and no dashboard; the driver connects to it. The nodes use the host's address, as
    `ray.init` does: Ray rewrites a 127.0.0.1 bootstrap address to it, so a loopback-only
    cluster cannot be joined."""
    from ray.cluster_utils import Cluster

    head = {
        "include_dashboard": False,
        "num_cpus": 2,
        "gcs_server_port": free_port(),
        "dashboard_agent_listen_port": free_port(),
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        workers = [cluster.add_node(include_dashboard=False, num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_of(actor) -> str:
    return ray.get(actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id()))


def test_losing_a_node_mid_run_keeps_every_session(cluster, scenario_file, tmp_path):
    from actors.observability.serve_memory import serve_processes

    cluster, workers = cluster
    path = paced_scenario(scenario_file, tmp_path / "out", fleet=FLEET)
    runner = Runner(load_scenario(path), progress=False)
    try:
        runner.setup()
        placed = [node_of(a) for a in runner.fleet.actors]
        assert len(set(placed)) >= 2, placed  # SPREAD put the fleets on several nodes
        [replica] = [
            node_of(h)
            for k, h in serve_processes(runner.cluster.app_name).items()
            if k.startswith("replica")
        ]
        # the worker with the most fleets, sparing the replica's node when there is a choice
        victim = max(workers, key=lambda w: (placed.count(w.node_id), w.node_id != replica))
        lost = [a for a, n in zip(runner.fleet.actors, placed, strict=True) if n == victim.node_id]
        assert lost, placed

        fault = Fault(lambda: bool(parts(runner.out)), lambda: cluster.remove_node(victim))
        fault.start()
        summary = runner.run()
        fault.outcome()

        assert_accounting(runner.out, runner.expected)
        assert summary["accounting"]["complete"] and summary["accounting"]["duplicates"] == 0
        assert all(node_of(a) != victim.node_id for a in lost)  # restarted elsewhere
    finally:
        runner.cleanup()


def test_a_cluster_without_a_shared_disk_reads_and_writes_object_storage(
    s3, cluster, scenario_file, prepared, checkpoints, tmp_path, monkeypatch
):
    """Data, checkpoints and output in S3: the fleet actors get URIs only (no path of the
    driver's), and losing a node mid-run still leaves every session in the store once."""
    from actors.storage.sink import has_parts, read_sessions
    from actors.storage.uris import is_uri

    monkeypatch.setenv("DUET_SIM_CACHE", str(tmp_path / "driver-cache"))
    cluster, workers = cluster
    out = s3.uri("runs", "multinode")
    data = s3.upload(prepared, "multinode-inputs", "data")
    ckpts = {f"din/{m}": s3.upload(checkpoints[m], "multinode-inputs", m) for m in ("base", "duet")}
    path = paced_scenario(
        scenario_file,
        tmp_path / "unused",
        fleet=FLEET,
        data={"dataset": "synthetic-clicks", "prepared": data},
        model={"backbones": ["din"], "checkpoints": ckpts},
        output={"dir": out, "flush_rows": 3, "flush_interval_s": 0.2},
    )
    runner = Runner(load_scenario(path), progress=False)
    try:
        runner.setup()
        for setup in (ray.get(ref) for ref in runner.fleet.setups):
            locations = [setup.prepared_dir, setup.sessions_dir]
            locations += [d for per in setup.checkpoints.values() for d in per.values()]
            assert all(is_uri(x) for x in locations), locations
        placed = [node_of(a) for a in runner.fleet.actors]
        victim = max(workers, key=lambda w: placed.count(w.node_id))
        fault = Fault(lambda: has_parts(runner.sessions), lambda: cluster.remove_node(victim))
        fault.start()
        summary = runner.run()
        fault.outcome()
        rows = pl.DataFrame(read_sessions(runner.sessions))
        assert rows.select("device_id", "session_index", "method").is_unique().all()
        assert dict(rows.group_by("method").len().iter_rows()) == runner.expected
        assert summary["accounting"]["complete"]
        assert not (tmp_path / "unused").exists()
    finally:
        runner.cleanup()
