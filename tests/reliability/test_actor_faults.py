"""Faults inside a running simulation on a real local Ray: a fleet actor is killed and restarts
from its flushed sessions; the generator's Serve replica is killed and Serve replaces it while
devices retry and fall back. Either way every expected session is on disk exactly once."""

from __future__ import annotations

import time

import polars as pl
import pytest

from actors.service.messages import GenerateRequest
from simulation.run import Runner
from simulation.scenario_file import load_scenario

from .faults import (
    Fault,
    assert_accounting,
    free_port,
    listen_addresses,
    paced_scenario,
    parts,
    wait_until,
)

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture
def runner(local_ray, scenario_file, tmp_path, request):
    """A set-up run of the paced scenario; an indirect parameter replaces sections of it."""
    path = paced_scenario(scenario_file, tmp_path / "out", **getattr(request, "param", {}))
    run = Runner(load_scenario(path), progress=False)
    run.setup()
    try:
        yield run
    finally:
        run.cleanup()


HTTP_PORT = free_port()


@pytest.mark.parametrize(
    "runner", [{"generator": {"http_port": HTTP_PORT}}], indirect=True, ids=["with HTTP"]
)
def test_killed_fleet_actor_resumes_from_its_flushed_sessions(runner):
    out = runner.out
    assert listen_addresses(HTTP_PORT) == {"127.0.0.1"}  # the run's Serve proxy: loopback

    def kill() -> dict:
        before = parts(out, "0")
        ray.kill(runner.fleet.actors[0], no_restart=False)  # a crash: Ray restarts it
        return before

    fault = Fault(lambda: bool(parts(out, "0")), kill)
    fault.start()
    summary = runner.run()
    before = fault.outcome()

    assert_accounting(out, runner.expected)
    assert summary["accounting"]["complete"] and summary["accounting"]["duplicates"] == 0
    # the parts flushed before the crash are untouched: nothing was rewritten
    assert {p: h for p, h in parts(out, "0").items() if p in before} == before
    # the restarted actor skipped what was on disk and simulated only the rest
    progress = ray.get(runner.fleet.actors[0].progress.remote())
    flushed_before = sum(pl.read_parquet(p).height for p in before) // len(runner.expected)
    assert progress.skipped >= flushed_before >= 1
    assert progress.sessions + progress.skipped == progress.expected


def replica_actors(app_name: str) -> list[str]:
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("SERVE_REPLICA::") and f"::{app_name}#" in a["name"]
    )


# a short deadline, so that devices caught in the outage fall back rather than wait it out
SHORT_DEADLINE = {
    "generator": {"timeout_s": 0.5, "retries": 2, "backoff_s": 0.05, "deadline_s": 1.0}
}


@pytest.mark.parametrize("runner", [SHORT_DEADLINE], indirect=True, ids=["deadline 1s"])
def test_killed_generator_replica_is_replaced_and_no_session_is_lost(runner):
    from ray import serve

    out, app = runner.out, runner.cluster.app_name
    [replica] = replica_actors(app)

    def kill() -> float:
        ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)
        return time.time()

    fault = Fault(lambda: bool(parts(out)), kill)
    fault.start()
    runner.run()
    killed_at = fault.outcome()

    rows = assert_accounting(out, runner.expected)
    duet = rows.filter(pl.col("method") == "duet")
    hit = duet.filter(pl.col("fallback") | (pl.col("attempts") > 1))
    assert hit.height > 0, "no session saw the outage: neither a retry nor a fallback"
    # a fallback is flagged, scored with the global classifier, and downloaded nothing
    fell_back = duet.filter(pl.col("fallback"))
    assert (fell_back["bytes_down"] == 0).all() and fell_back["auc"].is_not_null().all()
    called = fell_back.filter(pl.col("attempts") > 0)  # not the sessions with nothing to upload
    assert (called["wall_time"] >= killed_at).all()  # only the outage made devices fall back
    # Serve replaces the replica (found by its health check), which then generates again
    wait_until(
        lambda: (
            serve.status().applications[app].status == "RUNNING"
            and replica_actors(app) not in ([], [replica])
        )
    )
    request = GenerateRequest("after", "din/duet", items=[5, 17, 3, 42])
    assert serve.get_app_handle(app).generate.remote(request).result().params
