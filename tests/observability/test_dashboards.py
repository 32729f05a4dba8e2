"""Dashboards as code: committed JSON equals the build, structure, provisioning, and every query
run against a real Prometheus that scrapes an exporter fed with contract rows."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import polars as pl
import yaml

from actors.observability.metrics import MetricsServer
from simulation import dashboards_cmd
from simulation.dashboards import DASHBOARDS, DATASOURCE_UID, TAG, render

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "platform" / "grafana" / "provisioning"
PROMETHEUS = REPO / "platform" / "prometheus"


def committed() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((REPO / "dashboards").glob("*.json"))}


def test_committed_json_is_the_build() -> None:
    docs = committed()
    assert sorted(docs) == sorted(DASHBOARDS), "run `duet-sim dashboards build`"
    for name, build in DASHBOARDS.items():
        assert docs[name] == render(build()), (
            f"dashboards/{name}.json is stale: run `duet-sim dashboards build`"
        )


def test_dashboard_structure() -> None:
    docs = committed()
    assert len({d["uid"] for d in docs.values()}) == len(docs)
    for name, doc in docs.items():
        assert TAG in doc["tags"]
        ids = [p["id"] for p in doc["panels"]]
        assert len(set(ids)) == len(ids), name
        for p in doc["panels"]:
            assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, p["title"]
            assert p["gridPos"]["w"] > 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(set(refs)) == len(refs) and all(t["expr"] for t in p["targets"])
        assert doc["annotations"]["list"][0]["expr"].startswith("sum by (operator)")
        cells = [
            (x, y)
            for p in doc["panels"]
            for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
            for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
        ]
        assert len(cells) == len(set(cells)), f"{name}: panels overlap"
    kinds = {p["type"] for d in docs.values() for p in d["panels"]}
    assert {"timeseries", "stat", "heatmap", "table", "bargauge"} <= kinds


def test_provisioning_matches_dashboards_and_prometheus() -> None:
    datasource = yaml.safe_load((GRAFANA / "datasources" / "duet.yaml").read_text())["datasources"][
        0
    ]
    provider = yaml.safe_load((GRAFANA / "dashboards" / "duet.yaml").read_text())["providers"][0]
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert datasource["uid"] == DATASOURCE_UID and datasource["type"] == "prometheus"
    scrape = prometheus["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape == dashboards_cmd.SCRAPE_INTERVAL
    assert provider["folderUid"] == dashboards_cmd.FOLDER_UID and provider["type"] == "file"
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9108"]


def test_promtool_accepts_config_and_rules(prometheus_binary: str) -> None:
    promtool = Path(prometheus_binary).with_name("promtool")
    result = subprocess.run(
        [str(promtool), "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def wait_first_scrape(server: MetricsServer, attempts: int = 300) -> None:
    for _ in range(attempts):  # bounded: 300 x 0.1 s
        if server.scrapes:
            return
        time.sleep(0.1)
    raise AssertionError("prometheus never scraped the exporter")


def test_every_dashboard_query_returns_data_from_fed_exporter(
    start_prometheus, session_rows: pl.DataFrame, check_dashboard_queries
) -> None:
    server = MetricsServer("fixture", port=0, shift_operators=["genre_shift"])
    try:
        host, port = server.address()
        prom = start_prometheus(f"{host}:{port}")
        start = time.time()
        wait_first_scrape(server)
        server.set_active_devices("fleet-0", 12)
        # sessions arrive in three scrapes' worth, so counters exist before they grow
        for lo, hi in ((0, 4), (4, 7), (7, 10)):
            batch = session_rows.filter(pl.col("session_index").is_between(lo, hi - 1))
            server.record_sessions(batch.iter_rows(named=True))
            server.record_generator("ok", batch_size=16, seconds=0.01)
            if lo == 4:
                server.record_shift("genre_shift", devices=6)
            assert server.wait_for_scrapes(1, timeout_s=30)
        server.record_generator("unavailable", batch_size=4, seconds=1.0)
        server.set_active_devices("fleet-0", 0)
        assert server.wait_for_scrapes(2, timeout_s=30)
        end = time.time()
        total = prom.api("query", query="sum(duet_sessions_total)", time=end)["result"]
        assert float(total[0]["value"][1]) == session_rows.height
        values = {
            "__rate_interval": "4s",
            "__range": f"{int(end - start) + 5}s",
            "scenario": "fixture",
            "dataset": "movielens-100k",
            "backbone": "sasrec",
            "method": "duet",
        }
        assert check_dashboard_queries(prom, values, start, end) > 40
    finally:
        server.close(timeout_s=0)
