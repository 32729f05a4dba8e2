"""The session row: one (device, session, method) of a run, typed, and the Arrow schema of
the Parquet it is written to, derived from it so the two can never disagree."""

from __future__ import annotations

import typing
from typing import NamedTuple

import pyarrow as pa


class SessionRow(NamedTuple):
    """One finished session of one method on one device (each column: docs/scenarios.md "Rows")."""

    run_id: str
    scenario: str
    dataset: str
    backbone: str
    method: str
    device_id: int
    user_id: int
    session_index: int
    source_session: int
    network_class: str
    compute_tier: str
    upload_mode: str
    auc: float
    accuracy: float
    logloss: float
    num_samples: int
    upload_s: float
    generate_s: float
    download_s: float
    inference_s: float
    finetune_s: float
    latency_s: float
    bytes_up: int
    bytes_down: int
    shift: str
    shift_active: bool
    fallback: bool
    sim_time_s: float
    wall_time: float
    # beyond the contract: server-side share of the batch forward, generator attempts,
    # and the weights version the device used (empty when nothing was generated)
    generate_server_s: float
    attempts: int
    model_version: str
    # parameter sets requested for the session: 1 per session, or 1 per scored impression
    # for a history-conditioned method (0 for base and fine-tuning)
    requests: int
    # the request policy of a generated method ("" otherwise), its decision (policies.REASONS),
    # the age in sessions of the parameters scored with (0 fresh, -1 global) and the drift
    # score it read (NaN when it reads none)
    policy: str
    decision: str
    params_age: int
    drift: float
    # wall clock (epoch seconds) the session was due by its arrival mode (NaN when the
    # fleet is not paced) and the one it started at, once it had a slot: late_s is the
    # difference (actors/devices/arrivals.py)
    scheduled_wall: float
    started_wall: float
    late_s: float


ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
ROW_SCHEMA = pa.schema(
    [(name, ARROW_TYPES[kind]) for name, kind in typing.get_type_hints(SessionRow).items()]
)


def rows_table(rows: list[SessionRow]) -> pa.Table:
    """Rows as an Arrow table of :data:`ROW_SCHEMA`, built column by column."""
    columns = zip(*rows, strict=True) if rows else [()] * len(ROW_SCHEMA)
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, ROW_SCHEMA, strict=True)],
        schema=ROW_SCHEMA,
    )
