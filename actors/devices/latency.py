"""The virtual clock's latency model: how long one session of one method takes on a device.

A session starts at the device's cumulative think time (`DeviceProfile.start_s`); its
latency components are transfer = bytes / bandwidth + RTT (actors/devices/profiles.py),
generate = the measured wall time of the generator call (including retries), inference and
fine-tuning = the time measured for one session alone on this CPU x the compute tier
(actors/devices/ondevice.py). A session row's ``sim_time_s`` is the session's end.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.devices.config import FleetConfig
from actors.devices.gateway import Generated
from actors.devices.ondevice import Costs
from actors.devices.policy_cache import Ask, requested
from actors.devices.profiles import DeviceProfile


@dataclass(frozen=True)
class Latency:
    """One session's latency components, in virtual seconds."""

    upload_s: float
    generate_s: float
    download_s: float
    inference_s: float
    finetune_s: float

    @property
    def total_s(self) -> float:
        return (
            self.upload_s + self.generate_s + self.download_s + self.inference_s + self.finetune_s
        )


def session_latency(
    config: FleetConfig,
    cost: Costs,
    device: DeviceProfile,
    method: str,
    num_samples: int,
    gen: Generated | None,
    ask: Ask | None,
) -> Latency:
    """The latency of ``method``'s session of ``num_samples`` on ``device``: transfers and
    generation only when it requested (a download only when parameters came back)."""
    tier, net = config.compute_tiers[device.compute], config.network_classes[device.network]
    inference_s = cost.inference_s_per_sample[method] * num_samples * tier
    finetune_s = cost.device_s[method] * tier
    upload_s = generate_s = download_s = 0.0
    asked = requested(ask)
    # the embedding is computed once, for the drift score and an embedding upload alike
    embedded = ask is not None and ask.fingerprint is not None
    if embedded or (gen is not None and asked and device.upload == "embedding"):
        inference_s += cost.embed_s[method] * tier
    if gen is not None and asked:
        upload_s, generate_s = net.transfer_s(gen.bytes_up), gen.generate_s
        download_s = net.transfer_s(gen.bytes_down) if gen.params is not None else 0.0
    return Latency(upload_s, generate_s, download_s, inference_s, finetune_s)
