"""Session rows in the fleet's Parquet contract, made up but shaped like a real run.

Devices play ``sessions`` sessions with every method; a shift hits the first half of the
devices during sessions [``shift_start``, ``shift_end``) and lowers their AUC; DUET beats
base by a margin; a few sessions have an undefined AUC; latency components are the ones each
method uses (base: inference only).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

METHODS = ("base", "duet", "duet-no-swa", "finetune", "hypernet")
NETWORK_CLASSES = ("4g-5", "4g-15", "5g-50", "5g-100")
BANDWIDTH_BPS = {"4g-5": 5e6, "4g-15": 15e6, "5g-50": 50e6, "5g-100": 100e6}
AUC_GAIN = {"base": 0.0, "duet": 0.04, "duet-no-swa": 0.03, "finetune": 0.01, "hypernet": 0.005}
COMPONENTS = {  # which latency components each method pays for
    "base": ("inference",),
    "duet": ("upload", "generate", "download", "inference"),
    "duet-no-swa": ("upload", "generate", "download", "inference"),
    "finetune": ("finetune", "inference"),
    "hypernet": ("generate", "download", "inference"),
}


def make_session_rows(
    devices: int = 12,
    sessions: int = 10,
    methods: tuple[str, ...] = METHODS,
    shift_start: int = 4,
    shift_end: int = 7,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per (device, session, method) with every column of the contract."""
    rng = np.random.default_rng(seed)
    rows = []
    for device in range(devices):
        network = NETWORK_CLASSES[device % len(NETWORK_CLASSES)]
        device_skill = rng.normal(0.72, 0.04)
        for k in range(sessions):
            shifted = device < devices // 2 and shift_start <= k < shift_end
            session_auc = device_skill - (0.08 if shifted else 0.0) + rng.normal(0, 0.03)
            undefined = rng.random() < 0.05  # a session with only positives
            for method in methods:
                rows.append(_row(device, k, method, network, session_auc, shifted, undefined, rng))
    return pl.DataFrame(rows).with_columns(pl.col("shift").cast(pl.String))


def _row(device, k, method, network, session_auc, shifted, undefined, rng) -> dict:
    used = COMPONENTS[method]
    bytes_up = 1300 if "upload" in used else 0
    bytes_down = 8600 if "download" in used else 0
    seconds = {
        "upload": bytes_up / BANDWIDTH_BPS[network] + 0.03,
        "generate": float(rng.gamma(4.0, 0.002)),
        "download": bytes_down / BANDWIDTH_BPS[network] + 0.03,
        "inference": float(rng.gamma(3.0, 0.004)),
        "finetune": float(rng.gamma(5.0, 0.05)),
    }
    latency = {c: (seconds[c] if c in used else 0.0) for c in seconds}
    fallback = method.startswith("duet") and rng.random() < 0.02
    noise = rng.normal(0, 0.01)  # methods differ per session, so paired gains vary
    auc = np.nan if undefined else float(np.clip(session_auc + AUC_GAIN[method] + noise, 0, 1))
    return {
        "run_id": "fixture-run",
        "scenario": "fixture",
        "dataset": "movielens-100k",
        "backbone": "sasrec",
        "method": method,
        "device_id": device,
        "user_id": 1000 + device,
        "session_index": k,
        "source_session": 10 * device + k,
        "network_class": network,
        "compute_tier": "mid",
        "upload_mode": "embeddings",
        "auc": auc,
        "accuracy": np.nan,
        "logloss": float(rng.uniform(0.3, 0.7)),
        "num_samples": 101,
        **{f"{c}_s": v for c, v in latency.items()},
        "latency_s": sum(latency.values()),
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "requests": int("generate" in used),
        "generate_server_s": seconds["generate"] / 4 if "generate" in used else 0.0,
        "shift": "genre_shift" if shifted else "",
        "shift_active": shifted,
        "fallback": fallback,
        "sim_time_s": 60.0 * k,
        "wall_time": 1.7e9 + k,
        "policy": "always" if "generate" in used else "",
        "decision": "requested" if "generate" in used else "",
        "params_age": 0 if "generate" in used else -1,
        "drift": np.nan,
    }


def write_run_dir(out: Path, rows: pl.DataFrame, partitioned: bool = False) -> Path:
    """A run directory as the fleet writes it: rows as Parquet plus a summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    if partitioned:  # one file per fleet actor, as incremental flushes leave them
        for i, part in enumerate(rows.partition_by("network_class")):
            (out / "sessions" / f"fleet={i}").mkdir(parents=True)
            part.write_parquet(out / "sessions" / f"fleet={i}" / "part-0.parquet")
    else:
        rows.write_parquet(out / "sessions.parquet")
    summary = {"run_id": "fixture-run", "scenario": "fixture", "rows": rows.height}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


@pytest.fixture
def session_rows() -> pl.DataFrame:
    return make_session_rows()


@pytest.fixture
def run_dir(tmp_path: Path, session_rows: pl.DataFrame) -> Path:
    return write_run_dir(tmp_path / "run", session_rows)


# --- a real Prometheus --------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "platform" / "prometheus"
SCRAPE_INTERVAL_S = 1  # short, so a run of a few seconds gives every series several samples


class Prometheus:
    """Debian's Prometheus on 127.0.0.1, started by platform/prometheus/run-local.sh with the
    committed config and rules; only the target and the intervals are changed for the test.
    """

    def __init__(self, workdir: Path, target: str) -> None:
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        interval = f"{SCRAPE_INTERVAL_S}s"
        config["global"].update(scrape_interval=interval, evaluation_interval=interval)
        config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
        config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                str(PROMETHEUS_DIR / "run-local.sh"),
                "--port",
                str(self.port),
                "--config",
                str(workdir / "prometheus.yml"),
                "--data",
                str(workdir / "data"),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(workdir / "prometheus.log")

    def _wait_ready(self, log: Path, attempts: int = 300) -> None:
        for _ in range(attempts):  # bounded: 300 x 0.2 s
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready at {self.url}: {log.read_text()[-2000:]}")

    def api(self, path: str, **params: str | float) -> object:
        """GET /api/v1/<path>; returns ``data``, raising on an error status (bad PromQL)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path} {params}: {e.read().decode()}") from e
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's prometheus, installed by run-local.sh when missing; skip if it can't be had."""
    found = subprocess.run(
        [str(PROMETHEUS_DIR / "run-local.sh"), "--install"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.skip(f"no prometheus binary (apt-get install -y prometheus): {found.stderr[-500:]}")
    return found.stdout.strip()


@pytest.fixture
def start_prometheus(prometheus_binary: str, tmp_path: Path):
    """``start_prometheus(target)`` -> a running `Prometheus`; stopped after the test."""
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        started.append(Prometheus(tmp_path / f"prometheus-{len(started)}", target))
        return started[-1]

    yield start
    for prom in started:
        prom.stop()


# --- the dashboards' queries --------------------------------------------------------------------
DASHBOARDS_DIR = REPO / "dashboards"


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(where, kind, query) for every panel target, annotation and variable of dashboards/*.json.

    kind is "range" (Grafana plots it over the time range), "instant" (tables, bar gauges) or
    "label_values" (a variable's query).
    """
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for t in panel.get("targets", []):
                kind = "instant" if t.get("instant") else "range"
                found.append((f"{path.name}: {panel['title']} [{t['refId']}]", kind, t["expr"]))
        for a in doc["annotations"]["list"]:
            found.append((f"{path.name}: annotation {a['name']}", "range", a["expr"]))
        for v in doc["templating"]["list"]:
            found.append((f"{path.name}: variable {v['name']}", "label_values", v["query"]))
    return found


def substitute(query: str, values: dict[str, str]) -> str:
    """Replace Grafana variables as Grafana would; longest names first ($__range before $__r...)."""
    for name in sorted(values, key=len, reverse=True):
        query = query.replace(f"${name}", values[name])
    assert "$" not in query, f"unsubstituted variable in {query}"
    return query


def assert_queries_return_data(
    prom: Prometheus, values: dict[str, str], start: float, end: float
) -> int:
    """Run every dashboard query as Grafana would over [start, end]; each must return data."""
    empty = []
    queries = dashboard_queries()
    for where, kind, raw in queries:
        query = substitute(raw, values)
        if kind == "label_values":  # label_values(selector, label) -> the label values API
            selector, label = query.removeprefix("label_values(")[:-1].rsplit(", ", 1)
            data = prom.api(f"label/{label}/values", **{"match[]": selector}, start=start, end=end)
        elif kind == "instant":
            data = prom.api("query", query=query, time=end)["result"]
        else:
            data = prom.api("query_range", query=query, start=start, end=end, step=1)["result"]
        if not data:
            empty.append(f"{where}: {query}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    return len(queries)


@pytest.fixture
def check_dashboard_queries():
    """`assert_queries_return_data` for tests (helpers here are reached through fixtures)."""
    return assert_queries_return_data


@pytest.fixture
def make_rows():
    return make_session_rows


@pytest.fixture
def make_run_dir():
    return write_run_dir
