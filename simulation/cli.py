"""The `duet-sim` command line: one sub-command per module, each registering its own parser."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

# Sub-command modules, each exposing ``register(subparsers)`` that sets ``func`` on its parser.
# Listed by name so that `duet-sim --help` does not import torch or Ray up front.
COMMAND_MODULES = (
    "simulation.train_cmd",
    "simulation.serve_cmd",
    "simulation.run_cmd",
    "simulation.data_cmd",
    "simulation.dashboards_cmd",
    "simulation.report_cmd",
)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse prints usage plus the error; users asked for one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="duet-sim", description=__doc__)
    subparsers = parser.add_subparsers(
        dest="command", required=True, parser_class=OneLineErrorParser
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Load the ``--plugin`` modules, then parse (their names are choices) and run."""
    from duet.registry import PluginError, load_plugins
    from simulation.flags import plugins_in

    argv = sys.argv[1:] if argv is None else argv
    try:
        load_plugins(plugins_in(argv))
    except PluginError as exc:
        print(f"duet-sim: error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
