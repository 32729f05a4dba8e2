"""`duet-sim serve`: the DUET generator (actors/service/serve_app.py) on a local Ray, on
127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from pathlib import Path

from simulation.flags import add_plugin_flag

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve trained checkpoints' parameter generator")
    p.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="[KEY=]RUN_DIR",
        help="run directory of `duet-sim train`; repeat to serve several; KEY defaults to "
        "<dataset>/<backbone>/<method>",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=64, help="@serve.batch window size")
    p.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    p.add_argument("--max-samples", type=int, default=None, help="default: the dataset's R")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs for the local Ray")
    add_plugin_flag(p)
    p.set_defaults(func=run_serve)


def parse_checkpoints(values: list[str]) -> list[str] | dict[str, str]:
    """``["KEY=DIR", ...]`` -> {key: dir}; plain dirs -> a list; mixing both is refused."""
    named = [v.split("=", 1) for v in values if "=" in v and not Path(v).exists()]
    if not named:
        return [str(Path(v).resolve()) for v in values]
    if len(named) != len(values):
        raise SystemExit("duet-sim serve: error: name every --checkpoint (KEY=DIR) or none")
    return {k: str(Path(d).resolve()) for k, d in named}


def run_serve(args: argparse.Namespace) -> int:
    checkpoints = parse_checkpoints(args.checkpoint)
    for d in checkpoints.values() if isinstance(checkpoints, dict) else checkpoints:
        if not (Path(d) / "config.json").is_file():
            raise SystemExit(f"duet-sim serve: error: {d} is not a run directory (no config.json)")
    try:
        import ray
        from ray import serve
    except ImportError as e:
        raise SystemExit(f"duet-sim serve: error: {e}; pip install 'duet-sim[ray]'") from e
    from actors.service.serve_app import APP_NAME, build_app

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False)
    serve.start(http_options={"host": args.host, "port": args.port})
    app_args = {
        "checkpoints": checkpoints,
        "plugins": args.plugins,
        "plugin_root": os.getcwd(),
        "max_batch_size": args.max_batch_size,
        "batch_wait_timeout_s": args.batch_wait_timeout_s,
    }
    if args.max_samples is not None:
        app_args["max_samples"] = args.max_samples
    handle = serve.run(
        build_app(app_args),
        name=APP_NAME,
        route_prefix="/",
        logging_config={"enable_access_log": False},
    )
    keys = [m["key"] for m in handle.models.remote().result()]
    print(
        f"serving {keys} at http://{args.host}:{args.port}/v1/generate (Ctrl-C stops)", flush=True
    )
    # Ctrl-C and `kill` both stop cleanly (a shell's background job starts with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
