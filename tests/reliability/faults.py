"""Helpers shared by the fault tests: a paced scenario that runs long enough to be hit
mid-run, a fault injector, part-file snapshots and the session accounting every test asserts."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

# Paced devices: a session every ~0.5 s of wall time per device, one-session part files,
# so a run lasts several seconds and writes parts from the start (something to kill into).
PACED_FLEET = {
    "devices": 24,
    "sessions_per_device": 4,
    "actors": 2,
    "arrivals": {"type": "think", "mean_gap_s": 0.5, "pace": 1.0},
    "profiles": {"upload": {"raw": 1, "embedding": 1}},
}
POLL_S = 0.05


def paced_scenario(scenario_file: Callable[..., Path], out: Path, **sections: Any) -> Path:
    """The tiny world's scenario, paced, one session per part file, into ``out``."""
    output = {"dir": str(out), "flush_rows": 3, "flush_interval_s": 0.2}
    return scenario_file(**({"fleet": PACED_FLEET, "output": output} | sections))


def parts(out: Path, fleet: str = "*") -> dict[Path, str]:
    """Every flushed part file of ``fleet`` with the SHA-256 of its bytes."""
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.glob(f"sessions/fleet={fleet}/part-*.parquet"))
    }


class Fault(threading.Thread):
    """Calls ``inject`` once, as soon as ``ready()`` holds, while the run goes on meanwhile.

    ``ready`` and ``inject`` run in this thread; ``result`` keeps what ``inject`` returned
    and ``error`` what it raised (re-raised by `outcome`).
    """

    def __init__(
        self, ready: Callable[[], bool], inject: Callable[[], Any], give_up_s: float = 300
    ):
        super().__init__(daemon=True)
        self.ready, self.inject, self.give_up_s = ready, inject, give_up_s
        self.result: Any = None
        self.error: BaseException | None = None
        self.fired = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + self.give_up_s
        try:
            while time.monotonic() < end:
                if self.ready():
                    self.result = self.inject()
                    self.fired.set()
                    return
                time.sleep(POLL_S)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc

    def outcome(self) -> Any:
        """What ``inject`` returned; fails the test if it never ran or raised."""
        self.join(timeout=self.give_up_s)
        if self.error is not None:
            raise self.error
        assert self.fired.is_set(), "the fault was never injected: the run ended first"
        return self.result


def assert_accounting(out: Path, expected: dict[str, int]) -> pl.DataFrame:
    """Rows on disk equal the expected sessions per method, with no duplicate key; the rows."""
    rows = pl.read_parquet(out / "sessions")
    assert rows.select("device_id", "session_index", "method").is_unique().all()
    assert dict(rows.group_by("method").len().iter_rows()) == expected
    return rows


def wait_until(predicate: Callable[[], bool], give_up_s: float = 180) -> None:
    """Poll ``predicate`` until it holds; fail the test past ``give_up_s`` (a hang, not a
    timing claim: recovery takes seconds, the bound is for a broken one)."""
    end = time.monotonic() + give_up_s
    while not predicate():
        assert time.monotonic() < end, f"still not true after {give_up_s} s: {predicate}"
        time.sleep(POLL_S * 10)


def listen_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port``, any process (Linux /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
