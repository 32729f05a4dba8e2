"""Memory of a Serve application's processes (its replicas and the HTTP proxies), read inside
each actor: how the overload benchmark and the request-size test show that memory stays
bounded under load, without knowing where the actors run.

Linux only (``/proc/self``). ``peak`` is the kernel's resident high-water mark (VmHWM), which
`reset_peak` sets back to the current size, so a phase's peak can be read after the phase
instead of sampled during it (a sampler would miss short spikes, and its own requests would
queue behind the load it measures).
"""

from __future__ import annotations

from typing import Any

import ray

KIB = 1024


def serve_processes(app_name: str) -> dict[str, Any]:
    """``{"replica <id>": handle, "proxy <node>": handle}`` for the app's replicas and every
    HTTP proxy (named actors in Serve's namespace)."""
    found = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = actor["name"]
        if name.startswith("SERVE_REPLICA::") and f"::{app_name}#" in name:
            found[f"replica {name.rsplit('#', 1)[-1]}"] = ray.get_actor(name, namespace="serve")
        elif name.startswith("SERVE_PROXY_ACTOR"):
            found[f"proxy {name.rsplit('-', 1)[-1][:8]}"] = ray.get_actor(name, namespace="serve")
    return found


def memory(handles: dict[str, Any]) -> dict[str, dict[str, int]]:
    """``{process: {"rss_bytes", "peak_rss_bytes"}}``, read in each actor's own process."""
    refs = {k: h.__ray_call__.remote(process_memory) for k, h in handles.items()}
    return {k: ray.get(ref) for k, ref in refs.items()}


def reset_peak(handles: dict[str, Any]) -> None:
    """Start a new peak (VmHWM := VmRSS) in each process: ``echo 5 > /proc/self/clear_refs``."""
    ray.get([h.__ray_call__.remote(reset_process_peak) for h in handles.values()])


def process_memory(_actor: object = None) -> dict[str, int]:
    """This process's ``{"rss_bytes", "peak_rss_bytes"}`` (``_actor``: `__ray_call__`'s self)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) * KIB
    return {"rss_bytes": fields["VmRSS"], "peak_rss_bytes": fields["VmHWM"]}


def reset_process_peak(_actor: object = None) -> None:
    """Start a new peak in this process (``_actor``: `__ray_call__`'s self)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
