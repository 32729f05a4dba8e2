"""`duet-sim run` with ``metrics.enabled``, scraped by a real Prometheus: what Prometheus
stored matches the Parquet rows the run wrote, and every dashboard query returns data over
the run's window. The exporter is gone once the run returns (its ``close()`` waited for the
final scrapes), so everything is read back from Prometheus' storage."""

from __future__ import annotations

import time

import polars as pl
import pytest

from actors.observability.metrics import MetricsServer
from simulation.cli import main

from .conftest import SCRAPE_INTERVAL_S, free_port

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

METHODS = ["base", "duet", "finetune"]


def last_values(prom, query: str, start: float, end: float) -> dict[str, float]:
    """Each series' last value in [start, end], keyed by its ``method`` label (or "")."""
    result = prom.api("query_range", query=query, start=start, end=end, step=1)["result"]
    return {s["metric"].get("method", ""): float(s["values"][-1][1]) for s in result}


def test_run_exports_its_rows_and_feeds_every_dashboard(
    scenario_file, start_prometheus, check_dashboard_queries, tmp_path
) -> None:
    port = free_port()
    prom = start_prometheus(f"127.0.0.1:{port}")
    scenario = scenario_file(
        methods=METHODS,
        fleet={"devices": 24, "sessions_per_device": 3, "actors": 2},
        metrics={"enabled": True, "host": "127.0.0.1", "port": port},
    )
    start = time.time()
    assert main(["run", str(scenario), "--num-cpus", "2", "--no-progress"]) == 0
    # the recording rules see the final scrape one evaluation later, as a dashboard opened
    # after the run would
    time.sleep(2 * SCRAPE_INTERVAL_S)
    end = time.time()

    out = tmp_path / "out"
    rows = pl.read_parquet(out / "sessions")
    assert (out / "report.md").is_file()  # the run writes its report
    sessions = last_values(prom, "sum(duet_sessions_total)", start, end)
    assert sessions == {"": rows.height}
    per_method = last_values(prom, "sum by (method) (duet_session_auc_count)", start, end)
    assert set(per_method) == set(METHODS)
    shifted = last_values(prom, "sum(duet_shifted_devices_total)", start, end)
    assert shifted == {"": 12}  # the scenario's shift takes half of the 24 devices
    values = {
        "__rate_interval": "4s",
        "__range": f"{int(end - start) + 5}s",
        "scenario": "tiny",
        "dataset": "synthetic-clicks",
        "backbone": "din",
        "method": "duet",
    }
    assert check_dashboard_queries(prom, values, start, end) > 40


def test_taken_metrics_port_stops_the_run_before_any_fleet(scenario_file, tmp_path, capsys) -> None:
    taken = MetricsServer("other", port=0)  # another run's exporter, say
    try:
        port = taken.address()[1]
        scenario = scenario_file(metrics={"enabled": True, "host": "127.0.0.1", "port": port})
        assert main(["run", str(scenario), "--num-cpus", "2", "--no-progress"]) == 1
    finally:
        taken.close(timeout_s=0)
    err = capsys.readouterr().err
    assert "could not listen on 127.0.0.1" in err and "--set metrics.port=N" in err
    assert not (tmp_path / "out" / "sessions").exists()
