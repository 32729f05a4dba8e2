"""Session rows in the fleet's Parquet contract, made up but shaped like a real run.

Devices play ``sessions`` sessions with every method; a shift hits the first half of the
devices during sessions [``shift_start``, ``shift_end``) and lowers their AUC; DUET beats
base by a margin; a few sessions have an undefined AUC; latency components are the ones each
method uses (base: inference only).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

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
    auc = np.nan if undefined else float(np.clip(session_auc + AUC_GAIN[method], 0, 1))
    return {
        "run_id": "fixture-run", "scenario": "fixture", "dataset": "movielens-100k",
        "backbone": "sasrec", "method": method, "device_id": device, "user_id": 1000 + device,
        "session_index": k, "source_session": 10 * device + k, "network_class": network,
        "compute_tier": "mid", "upload_mode": "embeddings", "auc": auc, "accuracy": np.nan,
        "logloss": float(rng.uniform(0.3, 0.7)), "num_samples": 101,
        **{f"{c}_s": v for c, v in latency.items()}, "latency_s": sum(latency.values()),
        "bytes_up": bytes_up, "bytes_down": bytes_down,
        "shift": "genre_shift" if shifted else "", "shift_active": shifted,
        "fallback": fallback, "sim_time_s": 60.0 * k, "wall_time": 1.7e9 + k,
    }  # fmt: skip


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
