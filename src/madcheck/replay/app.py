"""The replay itself, once the command line is parsed: settings, passes, outputs.

Kept apart from ``command.py`` so that ``madcheck`` starts even where the plugin's
dependencies are broken; charts need ``matplotlib`` (the ``replay`` extra), checked before a
replay starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from madcheck.config.durations import parse_duration_ns
from madcheck.config.settings import ConfigError, load_config
from madcheck.demo import plugin_source_dir
from madcheck.engine.lineprotocol import normalize_precision
from madcheck.replay.alerts import AlertRecord, AlertWriter
from madcheck.replay.arguments import (
    CAPTURE_TOKEN,
    ArgumentError,
    is_captured,
    parse_trigger_options,
    read_config_file,
    trigger_arguments,
)
from madcheck.replay.capture import CaptureEndpoint
from madcheck.replay.console import ReplayConsole
from madcheck.replay.csvinput import CsvLayout
from madcheck.replay.incidents import (
    Budget,
    BudgetError,
    IncidentTaps,
    parse_budget,
    series_keys,
    tracking,
)
from madcheck.replay.inputs import InputOptions, tables_in
from madcheck.replay.noise import (
    MAINTENANCE_FILE,
    NoiseInputError,
    maintenance_toml,
    read_silences,
)
from madcheck.replay.runner import PassSettings, replay_pass
from madcheck.replay.stream import StreamCounts
from madcheck.replay.summary import ReplayTotals, print_summary
from madcheck.replay.sweep import SweepError, parse_sweep, print_sweep, sweep_arguments
from madcheck.replay.visuals import MissingExtra, Visuals

PLUGIN_FILE = "mad_check_plugin.py"


class UsageError(Exception):
    """The replay cannot start; printed as ``madcheck replay: error: ...``, exit status 2."""


def replay_command(options: argparse.Namespace) -> int:
    console = ReplayConsole(options.max_errors_shown, not options.no_progress)
    try:
        return _replay(options, console)
    except (UsageError, ArgumentError, SweepError, BudgetError, MissingExtra) as error:
        console.say(f"madcheck replay: error: {error}")
        return 2
    except KeyboardInterrupt:
        console.say("madcheck replay: interrupted")
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


def _with_measurement(options: argparse.Namespace, arguments: dict[str, str]) -> None:
    """Without ``--measurement`` (or a config file naming one), the input's only table."""
    if arguments.get("measurement", "").strip():
        return
    if not arguments.get("mad_thresholds", "").strip():
        return  # the configuration error says what is missing
    try:
        names = tables_in(options.files, options.format)
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    if names is None:
        raise UsageError("a CSV file has no table name: give --measurement")
    if len(names) != 1:
        listed = ", ".join(sorted(names)[:10]) or "none"
        raise UsageError(f"--measurement is needed: the input holds the tables {listed}")
    arguments["measurement"] = next(iter(names))


#: the flush interval of InfluxDB 3 (and of a replay whose results depend on time: grouping, cap)
LIVE_FLUSH_INTERVAL_NS = 1_000_000_000


def _settings(options: argparse.Namespace, arguments: dict[str, str]) -> PassSettings:
    try:
        loaded = load_config(arguments)
    except ConfigError as error:
        raise UsageError(f"configuration: {error}") from None
    config = loaded.config
    plugin = options.plugin or default_plugin()
    if plugin is None or not plugin.is_file():
        raise UsageError(f"plugin file not found: pass --plugin PATH/{PLUGIN_FILE}")
    try:
        precision = normalize_precision(options.precision)
        interval_ns = parse_duration_ns(options.flush_interval) if options.flush_interval else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if (interval_ns is not None and interval_ns <= 0) or options.max_batch_rows < 1:
        raise UsageError("--flush-interval and --max-batch-rows must be positive")
    noise = config.noise
    if interval_ns is None and (noise.group_by or noise.max_per_minute):
        # group_wait and the storm cap's minute follow the outbox clock, which the replay sets
        # to the newest data time of each call: calls as fine as a server's WAL flushes
        interval_ns = LIVE_FLUSH_INTERVAL_NS
    silences: list[dict[str, object]] = []
    if options.silences is not None:
        if not noise.silences_table:
            raise UsageError("--silences: silences are off (silences_table is empty)")
        try:
            silences = read_silences(options.silences, noise.silences_table)
        except NoiseInputError as error:
            raise UsageError(str(error)) from None
    monitored = {threshold.field for threshold in config.thresholds}
    layout = CsvLayout(
        tags=frozenset(_names(options.tags)),
        fields=frozenset(_names(options.fields)) | monitored,
    )
    return PassSettings(
        files=tuple(options.files),
        inputs=InputOptions(config.measurement, options.format, precision, layout),
        config=config,
        plugin=plugin,
        flush_interval_ns=interval_ns,
        max_batch_rows=options.max_batch_rows,
        silences=tuple(silences),
    )


def _with_maintenance(stack: ExitStack, arguments: dict[str, str], windows: object) -> None:
    """Give the plugin the ``[[maintenance]]`` tables of ``--config`` as a server does: in a
    TOML file named by ``config_file_path``, in a plugin dir of the replay's own (``PLUGIN_DIR``
    for the single-file plugin, restored when the replay ends)."""
    if arguments.get("config_file_path"):
        raise UsageError("--config with [[maintenance]] cannot be combined with config_file_path")
    try:
        text = maintenance_toml(windows)
    except NoiseInputError as error:
        raise UsageError(str(error)) from None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="madcheck-replay-")))
    (folder / MAINTENANCE_FILE).write_text(text, encoding="utf-8")
    arguments["config_file_path"] = MAINTENANCE_FILE
    previous = os.environ.get("PLUGIN_DIR")
    os.environ["PLUGIN_DIR"] = str(folder)
    stack.callback(_restore_plugin_dir, previous)


def _restore_plugin_dir(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("PLUGIN_DIR", None)
    else:
        os.environ["PLUGIN_DIR"] = previous


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _replay(options: argparse.Namespace, console: ReplayConsole) -> int:
    given = _given_arguments(options)
    from_file, file_only = read_config_file(options.config) if options.config else (None, {})
    visuals = Visuals(options.plot, options.report, options.plot_limit)
    if options.sweep and (options.alerts or visuals.wanted):
        raise UsageError("--sweep prints a table only; run without it for --alerts/--plot/--report")
    if options.sweep and options.send:
        raise UsageError("--sweep cannot --send: it would deliver every combination's alerts")
    try:
        visuals.prepare()
    except OSError as error:
        raise UsageError(f"cannot write {error.filename}: {error.strerror}") from None
    stdout = sys.stdout
    missing = [str(path) for path in options.files if not path.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    if options.suggest is not None:
        _check_suggested_field(options.suggest)
    budget = parse_budget(options.budget) if options.budget is not None else None
    if budget is not None and not (options.sweep or options.suggest):
        raise UsageError("--budget goes with --sweep or --suggest")
    with ExitStack() as stack:
        # Without --send the plugin's notifications go to a stand-in that answers like a
        # notifier and sends nothing; the results come from the plugin's history rows. With
        # --send it still takes the shadow trigger's (replay/incidents.py).
        capture = stack.enter_context(CaptureEndpoint())
        arguments = trigger_arguments(given, from_file, None if options.send else capture.port)
        if options.send and is_captured(arguments):
            raise UsageError(
                f"--send: the token {CAPTURE_TOKEN!r} is the replay's own stand-in's; "
                "give the notifier's"
            )
        placeholder = bool(options.suggest) and not arguments.get("mad_thresholds", "").strip()
        if placeholder:
            # the searched conditions replace it; a placeholder lets the configuration load
            arguments["mad_thresholds"] = f"{options.suggest}:3:30:3"
        if "maintenance" in file_only:
            _with_maintenance(stack, arguments, file_only["maintenance"])
        _with_measurement(options, arguments)
        captured = trigger_arguments(given, from_file, capture.port)
        for name in ("measurement", "mad_thresholds", "config_file_path"):
            if name in arguments:
                captured[name] = arguments[name]
        settings = _settings(options, arguments)
        if options.suggest:
            return _suggest(options, console, settings, arguments, budget, not placeholder)
        if options.sweep:
            _sweep(options, console, settings, arguments, budget)
            return 0
        writer = stack.enter_context(_alert_writer(options.alerts)) if options.alerts else None
        sinks: list[Callable[[AlertRecord], None]] = []
        if writer is not None:
            sinks.append(writer.write)
        if visuals.wanted:
            sinks.append(visuals.keep_alert)
        taps = IncidentTaps(
            [tracking(arguments, settings.config, options.send, captured, _plain(settings))]
        )
        result = replay_pass(settings, console, taps.arguments, on_alert=_fan_out(sinks), tap=taps)
        console.finish(result.counts.bad_lines)
        _say_if_nothing_matched(console, settings.inputs.measurement, result.counts)
        totals = result.totals[0]
        incidents = taps.counts[0]
        for alert_id, series in result.stats.items():
            series.incidents = incidents.by_alert.get(alert_id, 0)
        summary = ReplayTotals(
            counts=result.counts,
            series=len(series_keys(result.stats.values())),
            fired=totals.fired,
            suppressed=totals.suppressed,
            resolved=totals.resolved,
            notifications=totals.notifications - taps.hidden[0],
            held=totals.held,
            sent=options.send,
            seconds=result.seconds,
            incidents=incidents.total,
            series_with_incidents=incidents.series_with_incidents,
            days=result.span.days,
        )
        print_summary(stdout, result.stats.values(), summary, options.top)
        if visuals.wanted:
            visuals.produce(
                settings, console, result.stats, summary, _described(settings, options.send)
            )
    return 0


def _plain(settings: PassSettings) -> bool:
    """No noise control: turning recovery on in the user's trigger then changes nothing shown
    but the recoveries (hidden) and their notifications (subtracted); see replay/incidents.py."""
    noise = settings.config.noise
    return not (
        noise.inhibit
        or noise.levels
        or noise.group_by
        or noise.max_per_minute
        or noise.maintenance
        or settings.silences
    )


def _check_suggested_field(name: str) -> None:
    """The field must be one a ``mad_thresholds`` argument can name."""
    if not name.strip():
        raise UsageError("--suggest needs a field name")
    bad = sorted({char for char in name if char in "@,"})
    if bad:
        raise UsageError(
            f"--suggest {name!r}: a field named in mad_thresholds cannot contain "
            f"{' or '.join(repr(c) for c in bad)}"
        )


def _sweep(
    options: argparse.Namespace,
    console: ReplayConsole,
    settings: PassSettings,
    arguments: dict[str, str],
    budget: Budget | None,
) -> None:
    combinations = parse_sweep(options.sweep)
    variants = sweep_arguments(arguments, settings.config.thresholds, combinations)
    plain = _plain(settings)
    taps = IncidentTaps(
        [tracking(args, settings.config, False, None, plain) for _, args in variants]
    )
    result = replay_pass(settings, console, taps.arguments, tap=taps)
    console.finish(result.counts.bad_lines)
    print_sweep(sys.stdout, [label for label, _ in variants], result, taps.counts, budget)


def _suggest(
    options: argparse.Namespace,
    console: ReplayConsole,
    settings: PassSettings,
    arguments: dict[str, str],
    budget: Budget | None,
    compare_given: bool,
) -> int:
    """``--suggest``; ``compare_given``: ``--mad-thresholds`` (or the TOML file) was given, and
    its condition on the field is shown beside the suggestions."""
    from madcheck.replay.suggest import DEFAULT_BUDGET, SuggestError, suggest

    if options.sweep or options.alerts or options.plot or options.report or options.send:
        raise UsageError(
            "--suggest prints suggestions only: no --sweep, --alerts, --plot, --report or --send"
        )
    try:
        suggest(
            sys.stdout,
            console,
            settings,
            arguments,
            options.suggest,
            budget or parse_budget(DEFAULT_BUDGET),
            compare_given,
        )
    except SuggestError as error:
        raise UsageError(str(error)) from None
    return 0


def _described(settings: PassSettings, sent: bool) -> dict[str, str]:
    """The replayed configuration for the report, as the user gave it: no placeholder sender,
    no stand-in notifier."""
    config = settings.config
    described = {
        "measurement": config.measurement,
        "mad_thresholds": " @ ".join(t.describe() for t in config.thresholds),
        "state_change_count": str(config.state_change_count),
    }
    if config.notify_recovery:
        described["notify_recovery"] = f"true, recovery_count={config.recovery_count}"
    if config.repeat_interval_ns:
        described["repeat_interval"] = f"{config.repeat_interval_ns / 1e9:g} s"
    if sent:
        described["senders"] = ".".join(config.sender_names)
    return described


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
