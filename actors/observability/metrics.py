"""Prometheus metrics of a run: `MetricsRecorder` turns finished session rows into metrics.

No Ray here (Ray stays at the edge, docs/architecture.md): `MetricsServer` adds the HTTP
endpoint, and actors/observability/metrics_actor.py runs one per run as a named Ray actor
that every fleet reports to. The rows are those of the session Parquet (one per device,
session and method; columns in the fleet's contract), so Prometheus and the report count
the same things.

Metric families (Prometheus conventions: base units, ``_seconds``, ``_total``, histograms
for distributions, no device-id label). ``L`` = scenario, dataset, backbone, method,
network_class.

    duet_sessions_total{L}                          counter, one per row
    duet_session_auc{L}                             histogram of per-session AUC (NaN rows skipped)
    duet_session_latency_seconds{L, component}      histogram: upload, generate, download,
                                                    inference, finetune (components a method uses)
    duet_session_end_to_end_latency_seconds{L}      histogram of a row's ``latency_s``
    duet_session_fallbacks_total{L}                 counter: generator unreachable, global
                                                    classifier used
    duet_shifted_sessions_total{L}                  counter: rows with a shift operator active
    duet_network_bytes_total{L, direction}          counter: "up" / "down"
    duet_parameter_requests_total{L}                counter: parameter sets a device asked
                                                    for (1 per session, or per scored
                                                    impression under history conditioning)
    duet_shift_events_total{scenario, operator}     counter: operator applications
    duet_shifted_devices_total{scenario, operator}  counter: devices those applications touched
    duet_active_devices{scenario, fleet}            gauge: devices a fleet is simulating now
    duet_generator_requests_total{scenario, status} counter, one per attempt; status "ok",
                                                    "timeout", "error" or "refused"
                                                    (actors/devices/fleet.py)
    duet_generator_request_duration_seconds{scenario, status}  histogram
    duet_generator_batch_size{scenario}             histogram: devices per generator request
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

# ---------------------------------------------------------------------------------------------
SESSION_LABELS = ("scenario", "dataset", "backbone", "method", "network_class")
LATENCY_COMPONENTS = ("upload", "generate", "download", "inference", "finetune")
AUC_BUCKETS = tuple(i / 20 for i in range(1, 21))  # 0.05 wide: enough for p10..p90 of AUC
# 1 ms (an embedding upload on 5G) .. 60 s (a raw CK+ frame batch on 4G-5 plus fine-tuning)
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # Serve batches up to 64
# ---------------------------------------------------------------------------------------------
ROW_COLUMNS = frozenset(
    SESSION_LABELS
    + tuple(f"{c}_s" for c in LATENCY_COMPONENTS)
    + ("auc", "latency_s", "bytes_up", "bytes_down", "requests", "fallback", "shift_active")
    + ("policy", "decision")
)


class _ScrapeCounter(Collector):
    """Yields no metric; counts calls to ``collect``, i.e. scrapes of the registry.

    `MetricsRecorder.wait_for_scrapes` uses it so a run ends only after Prometheus has read
    its last rows. ``describe`` returns nothing so registration does not count as a scrape.
    """

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self.changed:
            self.count += 1
            self.changed.notify_all()
        return iter(())


@dataclass(frozen=True)
class _SessionSeries:
    """The metric children of one (scenario, dataset, backbone, method, network_class)."""

    sessions: Counter
    auc: Histogram
    latency: Callable[[str], Histogram]  # per component, created on first use
    end_to_end: Histogram
    fallbacks: Counter
    shifted: Counter
    bytes_up: Counter
    bytes_down: Counter
    requests: Counter
    decision: Callable[[str, str], Counter]  # per (policy, reason), created on first use


class MetricsRecorder:
    """Owns one registry with the duet metric families and updates them from the fleet's calls.

    Args:
        scenario (str): the run's scenario name; labels the metrics that carry no row
            (shift events, active devices, generator requests).
        registry (CollectorRegistry | None): where the families live. Default: a new one, so
            two recorders (tests, two runs in one process) never clash on the global registry.
        shift_operators (Sequence[str]): shift operator names the scenario uses; their
            counters start at 0 so the first event shows up in ``increase()`` (a counter
            whose first sample is already 1 looks unchanged to Prometheus). Default: none.

    Thread-safe: prometheus_client metrics lock internally, and the HTTP server thread only
    reads them.
    """

    def __init__(
        self,
        scenario: str,
        registry: CollectorRegistry | None = None,
        shift_operators: Sequence[str] = (),
    ) -> None:
        self.scenario = scenario
        self.registry = registry if registry is not None else CollectorRegistry()
        self._scrapes = _ScrapeCounter()
        self.registry.register(self._scrapes)
        self._last_update_scrape = 0
        self._series: dict[tuple[str, ...], _SessionSeries] = {}
        self._define_session_result_metrics()
        self._define_session_serving_metrics()
        self._define_event_metrics()
        for operator in shift_operators:
            self.shift_events.labels(scenario, operator)
            self.shifted_devices.labels(scenario, operator)

    def _define_session_result_metrics(self) -> None:
        """What each session came to: its count, AUC and latencies.

        Registered before the serving metrics: the registry exposes metrics in registration
        order, so /metrics lists them as it always has.
        """
        reg, labels = self.registry, SESSION_LABELS
        self.sessions = Counter(
            "duet_sessions",
            "Finished sessions (one per device, session and method).",
            labels,
            registry=reg,
        )
        self.auc = Histogram(
            "duet_session_auc",
            "Per-session AUC; sessions with an undefined AUC are not observed.",
            labels,
            buckets=AUC_BUCKETS,
            registry=reg,
        )
        self.latency = Histogram(
            "duet_session_latency_seconds",
            "Per-session latency of one component, simulated seconds; only components the "
            "method uses.",
            (*labels, "component"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.end_to_end = Histogram(
            "duet_session_end_to_end_latency_seconds",
            "Per-session latency from session start to scored session, simulated seconds.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )

    def _define_session_serving_metrics(self) -> None:
        """How each session was served: generator fallbacks, active shifts, network bytes,
        parameter requests and the request policy's decisions."""
        reg, labels = self.registry, SESSION_LABELS
        self.fallbacks = Counter(
            "duet_session_fallbacks",
            "Sessions scored with the global classifier because generation failed.",
            labels,
            registry=reg,
        )
        self.shifted = Counter(
            "duet_shifted_sessions",
            "Sessions played while a shift operator was active on the device.",
            labels,
            registry=reg,
        )
        self.bytes = Counter(
            "duet_network_bytes",
            "Bytes moved between device and cloud.",
            (*labels, "direction"),
            registry=reg,
        )
        self.requests = Counter(
            "duet_parameter_requests",
            "Parameter sets devices asked the generator for (per session or per impression).",
            labels,
            registry=reg,
        )
        self.decisions = Counter(
            "duet_request_decisions",
            "Request-policy decisions at session start, by policy and reason (requested, "
            "cached, budget_exhausted, no_cache; actors/devices/policies.py).",
            (*labels, "policy", "reason"),
            registry=reg,
        )

    def _define_event_metrics(self) -> None:
        reg = self.registry
        self.shift_events = Counter(
            "duet_shift_events",
            "Applications of a shift operator to a device group.",
            ("scenario", "operator"),
            registry=reg,
        )
        self.shifted_devices = Counter(
            "duet_shifted_devices",
            "Devices touched by shift operator applications.",
            ("scenario", "operator"),
            registry=reg,
        )
        self.active_devices = Gauge(
            "duet_active_devices",
            "Devices a fleet actor is simulating now.",
            ("scenario", "fleet"),
            registry=reg,
        )
        self.generator_requests = Counter(
            "duet_generator_requests",
            "Requests from fleets to the parameter generator.",
            ("scenario", "status"),
            registry=reg,
        )
        self.generator_seconds = Histogram(
            "duet_generator_request_duration_seconds",
            "Wall time of one generator request, as the fleet measured it.",
            ("scenario", "status"),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.generator_batch = Histogram(
            "duet_generator_batch_size",
            "Devices in one generator request.",
            ("scenario",),
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )

    def record_sessions(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Count finished session rows and observe their AUC, latencies, bytes and flags.

        Args:
            rows (Iterable[Mapping[str, Any]]): session rows as written to Parquet; extra
                columns are ignored.

        Returns:
            int: the number of rows recorded.

        Raises:
            KeyError: a row lacks a column the metrics need; the message lists them all.
        """
        n = 0
        for row in rows:
            missing = ROW_COLUMNS - row.keys()
            if missing:
                raise KeyError(f"session row lacks columns {sorted(missing)}")
            self._record_row(row)
            n += 1
        self._touched()
        return n

    def _record_row(self, row: Mapping[str, Any]) -> None:
        key = tuple(str(row[k]) for k in SESSION_LABELS)
        series = self._series.get(key) or self._new_series(key)
        series.sessions.inc()
        if _finite(row["auc"]):
            series.auc.observe(row["auc"])
        # a component a method does not use is 0 (base: no generate; only finetune tunes);
        # observing those zeros would drag every percentile of the component towards 0
        for component in LATENCY_COMPONENTS:
            seconds = row[f"{component}_s"]
            if _finite(seconds) and seconds > 0:
                series.latency(component).observe(seconds)
        if _finite(row["latency_s"]):
            series.end_to_end.observe(row["latency_s"])
        series.bytes_up.inc(row["bytes_up"])
        series.bytes_down.inc(row["bytes_down"])
        series.requests.inc(row["requests"])
        series.fallbacks.inc(bool(row["fallback"]))
        series.shifted.inc(bool(row["shift_active"]))
        if row["decision"]:  # generated methods only
            series.decision(row["policy"], row["decision"]).inc()

    def _new_series(self, key: tuple[str, ...]) -> _SessionSeries:
        """Resolve the children of one label set once; ``labels()`` per row costs ~5x more.

        Fallback and shifted counters start at 0 with the series, so their panels show 0
        rather than nothing in a run without fallbacks.
        """
        series = _SessionSeries(
            sessions=self.sessions.labels(*key),
            auc=self.auc.labels(*key),
            latency=functools.cache(lambda component: self.latency.labels(*key, component)),
            end_to_end=self.end_to_end.labels(*key),
            fallbacks=self.fallbacks.labels(*key),
            shifted=self.shifted.labels(*key),
            bytes_up=self.bytes.labels(*key, "up"),
            bytes_down=self.bytes.labels(*key, "down"),
            requests=self.requests.labels(*key),
            decision=functools.cache(
                lambda policy, reason: self.decisions.labels(*key, policy, reason)
            ),
        )
        self._series[key] = series
        return series

    def record_shift(self, operator: str, devices: int) -> None:
        """One application of shift ``operator`` to a group of ``devices`` devices."""
        self.shift_events.labels(self.scenario, operator).inc()
        self.shifted_devices.labels(self.scenario, operator).inc(devices)
        self._touched()

    def set_active_devices(self, fleet_id: str | int, n: int) -> None:
        """Fleet ``fleet_id`` now simulates ``n`` devices (0 when it has finished)."""
        self.active_devices.labels(self.scenario, str(fleet_id)).set(n)
        self._touched()

    def record_generator(self, status: str, batch_size: int, seconds: float) -> None:
        """One generator attempt for ``batch_size`` devices, ended with ``status`` ("ok", ...)."""
        self.generator_requests.labels(self.scenario, status).inc()
        self.generator_seconds.labels(self.scenario, status).observe(seconds)
        self.generator_batch.labels(self.scenario).observe(batch_size)
        self._touched()

    @property
    def scrapes(self) -> int:
        """How many times the registry has been collected (scraped) so far."""
        return self._scrapes.count

    def _touched(self) -> None:
        self._last_update_scrape = self._scrapes.count

    def wait_for_scrapes(self, n: int = 2, timeout_s: float = 60.0) -> bool:
        """Block until the registry was scraped ``n`` times after the last update.

        Called before the exporter stops, so Prometheus holds the final values. Two scrapes,
        not one: a series first seen in the last update then has two samples, which
        ``rate()`` needs. Returns at once when nothing has ever scraped (no Prometheus).

        Returns:
            bool: True when the scrapes happened, False on timeout or when never scraped.
        """
        target = self._last_update_scrape + n
        with self._scrapes.changed:
            if self._scrapes.count == 0:
                return False
            return self._scrapes.changed.wait_for(lambda: self._scrapes.count >= target, timeout_s)


class MetricsServer(MetricsRecorder):
    """A `MetricsRecorder` whose registry is served at ``http://host:port/metrics``.

    Args:
        scenario (str): see `MetricsRecorder`.
        host (str): bind address. Default: loopback; a Prometheus on another machine needs
            the node's address here.
        port (int): TCP port; 0 picks a free one (`address` tells which). Default: 9108.
        shift_operators (Sequence[str]): see `MetricsRecorder`.

    Raises:
        OSError: the port is taken (another run's exporter, usually).
    """

    def __init__(
        self,
        scenario: str,
        host: str = "127.0.0.1",
        port: int = 9108,
        shift_operators: Sequence[str] = (),
    ) -> None:
        super().__init__(scenario, shift_operators=shift_operators)
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def address(self) -> tuple[str, int]:
        """(host, port) the endpoint listens on."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def close(self, scrapes: int = 2, timeout_s: float = 60.0) -> bool:
        """Wait for the final scrapes (`wait_for_scrapes`), then stop serving.

        Returns:
            bool: whether Prometheus read the final values before the endpoint closed.
        """
        scraped = self.wait_for_scrapes(scrapes, timeout_s)
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
        return scraped


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)
