"""One row of the session table (actors/storage/rows.py): a method's score on one session of
one device, with the device's profile, the shift it played under, the session's latency on
the virtual clock and what its request policy decided and received.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from actors.devices.config import FleetConfig
from actors.devices.gateway import Generated
from actors.devices.latency import Latency
from actors.devices.ondevice import SessionScore
from actors.devices.policy_cache import Ask, requested
from actors.devices.profiles import DeviceProfile
from actors.devices.replay import Replay
from actors.storage.rows import SessionRow


def session_row(
    config: FleetConfig,
    device: DeviceProfile,
    k: int,
    replay: Replay,
    shift: str,
    method: str,
    score: SessionScore,
    gen: Generated | None,
    ask: Ask | None,
    latency: Latency,
    start: Start,
) -> SessionRow:
    """The row of ``method`` on session ``k`` of ``device``; ``gen`` None: the global
    classifier, ``ask`` None: a method the cloud does not generate."""
    asked, c = requested(ask), config
    return SessionRow(
        run_id=c.run_id,
        scenario=c.scenario,
        dataset=c.dataset,
        backbone=device.backbone,
        method=method,
        device_id=device.device_id,
        user_id=device.user_id,
        session_index=k,
        source_session=replay.source_session,
        network_class=device.network,
        compute_tier=device.compute,
        upload_mode=device.upload,
        auc=score.auc,
        accuracy=score.accuracy,
        logloss=score.logloss,
        num_samples=score.num_samples,
        upload_s=latency.upload_s,
        generate_s=latency.generate_s,
        download_s=latency.download_s,
        inference_s=latency.inference_s,
        finetune_s=latency.finetune_s,
        latency_s=latency.total_s,
        bytes_up=gen.bytes_up if gen else 0,
        bytes_down=gen.bytes_down if gen and gen.params is not None else 0,
        shift=shift,
        shift_active=bool(shift),
        fallback=asked and (gen is None or gen.params is None),
        sim_time_s=device.start_s[k] + latency.total_s,
        wall_time=time.time(),
        generate_server_s=gen.server_s if gen else 0.0,
        attempts=gen.attempts if gen else 0,
        model_version=gen.version if gen else "",
        requests=gen.requests if gen else 0,
        policy=ask.policy if ask else "",
        decision=ask.decision.reason if ask else "",
        params_age=ask.age if ask and not asked else (0 if gen and gen.params else -1),
        drift=ask.drift if ask else math.nan,
        scheduled_wall=start.scheduled_wall,
        started_wall=start.started_wall,
        late_s=start.late_s,
    )


@dataclass(frozen=True)
class Start:
    """When a session started on the wall clock, and when its arrival mode had it due (NaN
    when the fleet is not paced)."""

    scheduled_wall: float
    started_wall: float

    @property
    def late_s(self) -> float:
        """Seconds it started after it was due (NaN when not paced; never negative)."""
        return max(0.0, self.started_wall - self.scheduled_wall)
