"""MetricsRecorder on a real prometheus_client registry, fed with contract rows; the HTTP server
and the Ray exporter actor on 127.0.0.1."""

from __future__ import annotations

import urllib.request
from types import SimpleNamespace

import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.observability.metrics import (
    LATENCY_COMPONENTS,
    SESSION_LABELS,
    MetricsRecorder,
    MetricsServer,
)


def labels_of(row: dict) -> dict[str, str]:
    return {k: row[k] for k in SESSION_LABELS}


def value(rec: MetricsRecorder, name: str, **labels: str) -> float:
    v = rec.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_sessions_counted_per_label_set(session_rows: pl.DataFrame) -> None:
    rec = MetricsRecorder("fixture")
    assert rec.record_sessions(session_rows.iter_rows(named=True)) == session_rows.height
    groups = session_rows.group_by(SESSION_LABELS).agg(
        n=pl.len(),
        n_auc=pl.col("auc").is_not_nan().sum(),
        auc_sum=pl.col("auc").fill_nan(None).sum(),
        fallbacks=pl.col("fallback").sum(),
        shifted=pl.col("shift_active").sum(),
        bytes_down=pl.col("bytes_down").sum(),
    )
    for g in groups.iter_rows(named=True):
        key = labels_of(g)
        assert value(rec, "duet_sessions_total", **key) == g["n"]
        assert value(rec, "duet_session_auc_count", **key) == g["n_auc"]  # NaN AUC skipped
        assert value(rec, "duet_session_auc_sum", **key) == pytest.approx(g["auc_sum"])
        assert value(rec, "duet_session_fallbacks_total", **key) == g["fallbacks"]
        assert value(rec, "duet_shifted_sessions_total", **key) == g["shifted"]
        down = value(rec, "duet_network_bytes_total", **key, direction="down")
        assert down == g["bytes_down"]


def test_latency_only_for_components_a_method_uses(session_rows: pl.DataFrame) -> None:
    rec = MetricsRecorder("fixture")
    rec.record_sessions(session_rows.iter_rows(named=True))
    for component in LATENCY_COMPONENTS:
        col = pl.col(f"{component}_s")
        per_method = session_rows.group_by("method").agg(n=(col > 0).sum(), s=col.sum())
        for m in per_method.iter_rows(named=True):
            samples = [
                s.value
                for metric in rec.registry.collect()
                if metric.name == "duet_session_latency_seconds"
                for s in metric.samples
                if s.name.endswith("_count")
                and s.labels["component"] == component
                and s.labels["method"] == m["method"]
            ]
            assert sum(samples) == m["n"], (component, m["method"])
    # base never generates: no generate series exists for it at all
    assert value(rec, "duet_session_latency_seconds_count", component="generate") == 0


def test_auc_buckets_are_cumulative_and_bounded(session_rows: pl.DataFrame) -> None:
    rec = MetricsRecorder("fixture")
    rec.record_sessions(session_rows.iter_rows(named=True))
    key = labels_of(session_rows.row(0, named=True))
    buckets = [value(rec, "duet_session_auc_bucket", **key, le=str(le / 20)) for le in range(1, 21)]
    assert buckets == sorted(buckets)
    assert buckets[-1] == value(rec, "duet_session_auc_count", **key)


def test_events_generator_and_active_devices() -> None:
    rec = MetricsRecorder("s1", shift_operators=["genre_shift", "click_noise"])
    # declared operators exist at 0 before any event, so increase() sees the first one
    assert (
        rec.registry.get_sample_value(
            "duet_shift_events_total", {"scenario": "s1", "operator": "click_noise"}
        )
        == 0.0
    )
    rec.record_shift("genre_shift", devices=40)
    rec.record_shift("genre_shift", devices=10)
    rec.set_active_devices("fleet-0", 300)
    rec.set_active_devices("fleet-0", 120)
    for batch in (64, 3):
        rec.record_generator("ok", batch_size=batch, seconds=0.02)
    rec.record_generator("unavailable", batch_size=8, seconds=1.5)
    assert value(rec, "duet_shift_events_total", scenario="s1", operator="genre_shift") == 2
    assert value(rec, "duet_shifted_devices_total", scenario="s1", operator="genre_shift") == 50
    assert value(rec, "duet_active_devices", scenario="s1", fleet="fleet-0") == 120
    assert value(rec, "duet_generator_requests_total", scenario="s1", status="ok") == 2
    assert value(rec, "duet_generator_batch_size_sum", scenario="s1") == 75
    assert value(rec, "duet_generator_batch_size_bucket", scenario="s1", le="4.0") == 1
    dur = value(
        rec, "duet_generator_request_duration_seconds_sum", scenario="s1", status="unavailable"
    )
    assert dur == 1.5


def test_row_missing_columns_is_refused(session_rows: pl.DataFrame) -> None:
    row = session_rows.drop("auc", "fallback").row(0, named=True)
    with pytest.raises(KeyError, match=r"\['auc', 'fallback'\]"):
        MetricsRecorder("fixture").record_sessions([row])


def test_no_device_labels_and_conventional_names(session_rows: pl.DataFrame) -> None:
    rec = MetricsRecorder("fixture")
    rec.record_sessions(session_rows.iter_rows(named=True))
    for metric in rec.registry.collect():
        for sample in metric.samples:
            assert not {"device_id", "user_id", "device"} & sample.labels.keys()
        assert metric.name.startswith("duet_")
        if metric.type == "counter":  # exposed with the _total suffix
            assert all(s.name.endswith(("_total", "_created")) for s in metric.samples)
        if "latency" in metric.name or "duration" in metric.name:
            assert metric.name.endswith("_seconds")


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_server_serves_on_loopback_and_waits_for_final_scrapes(session_rows) -> None:
    server = MetricsServer("fixture", host="127.0.0.1", port=0)
    host, port = server.address()
    assert host == "127.0.0.1"
    assert not server.wait_for_scrapes(timeout_s=0)  # nobody scraped yet: no wait at all
    url = f"http://{host}:{port}/metrics"
    scrape(url)
    server.record_sessions(session_rows.head(7).iter_rows(named=True))
    first = scrape(url)
    assert sum(s.value for s in first["duet_sessions"] if s.name.endswith("_total")) == 7
    assert not server.wait_for_scrapes(n=2, timeout_s=0)  # one scrape since the rows
    scrape(url)
    assert server.close(scrapes=2, timeout_s=0)
    with pytest.raises(OSError):
        scrape(url)


@pytest.mark.ray
def test_exporter_actor_reachable_by_name_and_port_conflict(session_rows) -> None:
    ray = pytest.importorskip("ray")
    from actors.observability.metrics_actor import get_exporter, start_exporter

    ray.init(
        address="local", num_cpus=1, include_dashboard=False, object_store_memory=100 * 1024**2
    )
    taken = MetricsServer("other", port=0)
    try:
        assert start_exporter(SimpleNamespace(enabled=False, host="x", port=0), "s") is None
        busy = SimpleNamespace(enabled=True, host="127.0.0.1", port=taken.address()[1])
        with pytest.raises(OSError, match="could not listen"):
            start_exporter(busy, "fixture", name="refused")  # its name stays taken
        settings = SimpleNamespace(enabled=True, host="127.0.0.1", port=0)
        handle = start_exporter(settings, "fixture", ["genre_shift"])
        host, port = ray.get(handle.address.remote())
        rows = list(session_rows.head(9).iter_rows(named=True))
        assert ray.get(get_exporter().record_sessions.remote(rows)) == 9
        total = scrape(f"http://{host}:{port}/metrics")["duet_sessions"]
        assert sum(s.value for s in total if s.name.endswith("_total")) == 9
        assert not ray.get(handle.close.remote(timeout_s=0))  # one scrape, not two
    finally:
        taken.close(timeout_s=0)
        ray.shutdown()
