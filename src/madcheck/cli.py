"""The ``madcheck`` command line.

Each area of the product registers its own sub-commands; this module only assembles them, so the
command line shows the same architecture as the package.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

#: Modules that define ``register(subparsers)``; each adds its own sub-commands.
COMMAND_MODULES: tuple[str, ...] = (
    "madcheck.engine.commands",
    "madcheck.demo",
    "madcheck.replay.command",
    "madcheck.route.command",
)


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
    # A sub-command that passes free-form ``--name value`` pairs on (``replay`` hands them to the
    # plugin as trigger arguments) sets ``extra_arguments=[]`` as a default; every other one
    # rejects unknown options as argparse always does.
    options, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(options, "extra_arguments", None) is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        options.extra_arguments = extra
    handler = getattr(options, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(options) or 0)
