"""The replay itself, once the command line is parsed: settings, passes, outputs.

Kept apart from ``command.py`` so that ``madcheck`` starts, and says how to install the
``replay`` extra, even where ``rich`` and ``matplotlib`` are not installed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console

from madcheck.config.durations import parse_duration_ns
from madcheck.config.settings import ConfigError, load_config
from madcheck.demo import plugin_source_dir
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
from madcheck.replay.inputs import InputOptions
from madcheck.replay.runner import PassSettings, replay_pass
from madcheck.replay.stream import StreamCounts
from madcheck.replay.summary import ReplayTotals, print_summary
from madcheck.replay.sweep import SweepError, parse_sweep, print_sweep, sweep_arguments
from madcheck.replay.visuals import MissingExtra, Visuals

PLUGIN_FILE = "mad_check_plugin.py"


class UsageError(Exception):
    """The replay cannot start; printed as ``madcheck replay: error: ...``, exit status 2."""


def replay_command(options: argparse.Namespace) -> int:
    # soft_wrap: a message is one line, whatever the width, so it can be grepped
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return _replay(options, stderr)
    except (UsageError, ArgumentError, SweepError, MissingExtra) as error:
        stderr.print(f"madcheck replay: error: {error}", markup=False)
        return 2
    except KeyboardInterrupt:
        stderr.print("madcheck replay: interrupted")
        return 130


def default_plugin() -> Path | None:
    """The plugin file of a source checkout, else the copy a wheel installs."""
    try:
        return plugin_source_dir() / PLUGIN_FILE
    except FileNotFoundError:
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
        raise UsageError(f"plugin file not found: pass --plugin PATH/{PLUGIN_FILE}")
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
    try:
        visuals.prepare()
    except OSError as error:
        raise UsageError(f"cannot write {error.filename}: {error.strerror}") from None
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
        writer = stack.enter_context(_alert_writer(options.alerts)) if options.alerts else None
        sinks: list[Callable[[AlertRecord], None]] = []
        if writer is not None:
            sinks.append(writer.write)
        if visuals.wanted:
            sinks.append(visuals.keep_alert)
        result = replay_pass(settings, console, [arguments], on_alert=_fan_out(sinks))
        console.finish(result.counts.bad_lines)
        _say_if_nothing_matched(console, settings.inputs.measurement, result.counts)
        totals = result.totals[0]
        summary = ReplayTotals(
            counts=result.counts,
            series=len({(s.tags, s.field) for s in result.stats.values()}),
            fired=totals.fired,
            suppressed=totals.suppressed,
            resolved=totals.resolved,
            captured=capture.received if capture else None,
            seconds=result.seconds,
        )
        print_summary(stdout, result.stats.values(), summary, options.top)
        if visuals.wanted:
            visuals.produce(settings, console, result.stats, summary)
    return 0


def _say_if_nothing_matched(console: ReplayConsole, measurement: str, counts: StreamCounts) -> None:
    if counts.points == 0 and counts.other_names:
        names = ", ".join(sorted(counts.other_names))
        console.note(f"no rows of table {measurement!r} in the input; its tables include: {names}")


def _alert_writer(path: Path) -> AlertWriter:
    try:
        return AlertWriter(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"--alerts {path}: {error.strerror}") from None


def _fan_out(sinks: list[Callable[[AlertRecord], None]]) -> Callable[[AlertRecord], None] | None:
    if not sinks:
        return None

    def send(record: AlertRecord) -> None:
        for sink in sinks:
            sink(record)

    return send
