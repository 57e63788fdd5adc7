"""The ``madcheck`` command line.

Each area of the product registers its own sub-commands; this module only assembles them, so the
command line shows the same architecture as the package.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

#: Modules that define ``register(subparsers)``; each adds its own sub-commands.
COMMAND_MODULES: tuple[str, ...] = ("madcheck.engine.commands", "madcheck.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="madcheck",
        description="MAD anomaly detection for InfluxDB 3: plugins, a local engine and backtests.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    handler = getattr(options, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(options) or 0)
