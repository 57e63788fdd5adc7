"""``madcheck replay``: run recorded data through the MAD plugin and show what would have fired."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

import madcheck
from madcheck.config.durations import parse_duration_ns
from madcheck.config.settings import ConfigError, load_config
from madcheck.engine.lineprotocol import normalize_precision
from madcheck.replay.alerts import AlertRecord, AlertWriter
from madcheck.replay.arguments import (
    ArgumentError,
    parse_trigger_options,
    read_config_file,
    trigger_arguments,
)
from madcheck.replay.capture import CaptureEndpoint
from madcheck.replay.console import ReplayConsole
from madcheck.replay.csvinput import CsvLayout
from madcheck.replay.inputs import FORMATS, InputOptions
from madcheck.replay.runner import PassSettings, replay_pass
from madcheck.replay.summary import ReplayTotals, print_summary
from madcheck.replay.sweep import SweepError, parse_sweep, print_sweep, sweep_arguments
from madcheck.replay.visuals import MissingExtra, Visuals

_PLUGIN_FILE = "mad_check_plugin.py"


class UsageError(Exception):
    """The replay cannot start; printed as ``madcheck replay: error: ...``, exit status 2."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="backtest a configuration on recorded line protocol or CSV",
        description=(
            "Run recorded data through the MAD plugin, batch by batch on the data's own clock, "
            "and show which alerts would have fired. Any other trigger argument can be given as "
            "--name value after the files (e.g. --state-change-count 3); notifications are "
            "captured, not sent, unless --send."
        ),
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="LP or CSV, .gz ok")
    parser.add_argument("--measurement", help="the table to check (trigger argument)")
    parser.add_argument("--mad-thresholds", help="e.g. temp:2.5:20:5@load:3:10:2m")
    parser.add_argument("--config", type=Path, help="a trigger's TOML file (the command wins)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="default: by name")
    parser.add_argument("--precision", default="auto", help="auto|s|ms|us|ns for timestamps")
    parser.add_argument("--tags", default="", help="CSV: columns that are tags (a,b)")
    parser.add_argument("--fields", default="", help="CSV: columns that are fields (a,b)")
    parser.add_argument("--flush-interval", default="1s", help="data time per plugin call")
    parser.add_argument("--max-batch-rows", type=int, default=50_000, help="rows per call, max")
    parser.add_argument("--alerts", type=Path, help="write every alert to FILE.jsonl or FILE.csv")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="one PNG per alerting series")
    parser.add_argument("--plot-limit", type=int, default=20, help="charts at most (default 20)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="a self-contained HTML page")
    parser.add_argument(
        "--sweep", nargs="+", metavar="NAME=V1,V2", help="k, window_count, threshold, ..."
    )
    parser.add_argument("--send", action="store_true", help="deliver to a running notifier")
    parser.add_argument("--port", help="--send: the notifier's port (port_override)")
    parser.add_argument("--token", help="--send: the notifier's token (influxdb3_auth_token)")
    parser.add_argument("--notification-path", help="--send: the notifier's request path")
    parser.add_argument("--plugin", type=Path, help=f"the {_PLUGIN_FILE} to run")
    parser.add_argument("--top", type=int, default=30, help="summary rows shown (default 30)")
    parser.add_argument("--max-errors-shown", type=int, default=20, help="default 20")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run, extra_arguments=[])


def run(options: argparse.Namespace) -> int:
    stderr = Console(stderr=True, highlight=False)
    try:
        return _replay(options, stderr)
    except (UsageError, ArgumentError, SweepError, MissingExtra) as error:
        stderr.print(f"madcheck replay: error: {error}", markup=False)
        return 2


def default_plugin() -> Path | None:
    """The plugin file shipped with the package, or beside the source tree."""
    package = Path(madcheck.__file__).resolve().parent
    for candidate in (package / "plugins" / _PLUGIN_FILE, package.parents[1] / "plugins"):
        path = candidate if candidate.suffix else candidate / _PLUGIN_FILE
        if path.is_file():
            return path
    return None


def _given_arguments(options: argparse.Namespace) -> dict[str, str]:
    extra = list(options.extra_arguments)
    given = parse_trigger_options(extra)
    for name, value in (
        ("measurement", options.measurement),
        ("mad_thresholds", options.mad_thresholds),
        ("port_override", options.port),
        ("influxdb3_auth_token", options.token),
        ("notification_path", options.notification_path),
    ):
        if value is not None:
            given[name] = value
    if not options.send and (options.port or options.token or options.notification_path):
        raise UsageError("--port, --token and --notification-path need --send")
    return given


def _settings(options: argparse.Namespace, arguments: dict[str, str]) -> PassSettings:
    try:
        loaded = load_config(arguments)
    except ConfigError as error:
        raise UsageError(f"configuration: {error}") from None
    config = loaded.config
    plugin = options.plugin or default_plugin()
    if plugin is None or not plugin.is_file():
        raise UsageError(f"plugin file not found: pass --plugin PATH/{_PLUGIN_FILE}")
    missing = [str(path) for path in options.files if not path.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    try:
        precision = normalize_precision(options.precision)
        interval_ns = parse_duration_ns(options.flush_interval)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if interval_ns <= 0 or options.max_batch_rows < 1:
        raise UsageError("--flush-interval and --max-batch-rows must be positive")
    monitored = {threshold.field for threshold in config.thresholds}
    layout = CsvLayout(
        tags=frozenset(_names(options.tags)),
        fields=frozenset(_names(options.fields)) | monitored,
    )
    return PassSettings(
        files=tuple(options.files),
        inputs=InputOptions(config.measurement, options.format, precision, layout),
        thresholds=config.thresholds,
        plugin=plugin,
        flush_interval_ns=interval_ns,
        max_batch_rows=options.max_batch_rows,
    )


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _replay(options: argparse.Namespace, stderr: Console) -> int:
    given = _given_arguments(options)
    from_file = read_config_file(options.config) if options.config else None
    visuals = Visuals(options.plot, options.report, options.plot_limit)
    if options.sweep and (options.alerts or visuals.wanted):
        raise UsageError("--sweep prints a table only; run without it for --alerts/--plot/--report")
    if options.sweep and options.send:
        raise UsageError("--sweep cannot --send: it would deliver every combination's alerts")
    visuals.check_available()
    console = ReplayConsole(options.max_errors_shown, not options.no_progress, stderr)
    stdout = Console(highlight=False)
    with ExitStack() as stack:
        capture = None if options.send else stack.enter_context(CaptureEndpoint())
        arguments = trigger_arguments(given, from_file, capture.port if capture else None)
        settings = _settings(options, arguments)
        if options.sweep:
            combinations = parse_sweep(options.sweep)
            variants = sweep_arguments(arguments, settings.thresholds, combinations)
            result = replay_pass(settings, console, [args for _, args in variants], track=False)
            console.finish(result.counts.bad_lines)
            print_sweep(stdout, [label for label, _ in variants], result)
            return 0
        writer = stack.enter_context(AlertWriter(options.alerts)) if options.alerts else None
        sinks: list[Callable[[AlertRecord], None]] = []
        if writer is not None:
            sinks.append(writer.write)
        if visuals.wanted:
            sinks.append(visuals.keep_alert)
        result = replay_pass(settings, console, [arguments], on_alert=_fan_out(sinks))
        console.finish(result.counts.bad_lines)
        totals = result.totals[0]
        summary = ReplayTotals(
            counts=result.counts,
            series=len({(s.tags, s.field) for s in result.stats.values()}),
            fired=totals.fired,
            suppressed=totals.suppressed,
            captured=capture.received if capture else None,
            seconds=result.seconds,
        )
        print_summary(stdout, result.stats.values(), summary, options.top)
        if visuals.wanted:
            visuals.produce(settings, console, result.stats, summary)
    return 0


def _fan_out(sinks: list[Callable[[AlertRecord], None]]) -> Callable[[AlertRecord], None] | None:
    if not sinks:
        return None

    def send(record: AlertRecord) -> None:
        for sink in sinks:
            sink(record)

    return send
