"""``process_writes`` for the MAD check: the glue between the engine and the detector.

Everything that must survive between calls (the parsed config, every series' window, the
outbox and its sender thread) lives in one ``TriggerState`` kept in the trigger's cache and
rebuilt only when the config changes (``madcheck.plugin.trigger_state``); the schema is cached
beside it for an hour.

A call never waits on the network: fired alerts pass the noise-control stages
(``madcheck.route``: severity inhibition, silences, maintenance windows, repeat control), go to the
outbox, one by one or grouped or held by the storm cap (``madcheck.plugin.notices``), and the
trigger's background sender posts them (``madcheck.plugin.delivery``). Every alert's fate is a row
of the alerts table. With ``--run-asynchronous`` the engine may run
calls of one trigger at once, so each call detects under the state's own lock: every row enters
its window once and each qualifying run alerts once.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeGuard

from madcheck.config.durations import format_duration_ns
from madcheck.config.settings import Config
from madcheck.detect.alerts import Alert
from madcheck.detect.detector import SKIP_MISSING, BatchResult, Detector
from madcheck.detect.lifecycle import RepeatGate
from madcheck.plugin.calllog import CallLog
from madcheck.plugin.delivery import LOG_LABEL, STATE_KEY, Queued, end_call
from madcheck.plugin.history import history_line, record
from madcheck.plugin.notices import CAPPED, Notices
from madcheck.plugin.schema import (
    FALLBACK_TTL_S,
    SCHEMA_TTL_S,
    TableSchema,
    fetch_schema,
    fetch_tables,
    has_unknown_columns,
    infer_schema,
)
from madcheck.plugin.silences import SilenceReader
from madcheck.plugin.trigger_state import AlertingState, cached_state
from madcheck.plugin.warmstart import warm_start
from madcheck.route.inhibit import Inhibitor
from madcheck.route.maintenance import window_covering
from madcheck.route.pipeline import (
    INHIBITED,
    RECORDED_FATES,
    SEND,
    SUPPRESSED,
    Router,
    Silencer,
)
from madcheck.route.silences import SilenceSet

__all__ = ["STATE_KEY", "TriggerState", "process_writes", "render"]

SKIP_BAD_TAGS = "tag value not text"
_TEXT_OR_NONE = frozenset({str, type(None)})


@dataclass(kw_only=True)
class TriggerState(AlertingState):
    """Everything a data-writes trigger keeps between calls."""

    detector: Detector
    #: the noise-control stages and repeat control between detector and outbox
    router: Router = field(default_factory=Router)
    #: the silences table's reader; None when ``silences_table`` is empty
    silences: SilenceReader | None = None
    #: alert -> outbox message(s): one by one, grouped (``group_by``), capped
    notices: Notices = field(init=False, repr=False)
    #: the trigger cache's key of the measurement's schema
    schema_key: str = field(init=False, repr=False)
    #: the monitored fields, sorted: what warm start reads from the table's history
    fields: tuple[str, ...] = field(init=False, repr=False)
    #: whether a call said if the measurement's table exists (once per config)
    table_checked: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        config = self.config
        self.schema_key = f"madcheck.schema.{config.measurement}"
        self.fields = tuple(sorted({t.field for t in config.thresholds}))
        self.notices = Notices(
            config,
            self.outbox,
            lambda alert: (render(_template(config, alert), alert), _summary(alert)),
        )


def process_writes(
    influxdb3_local: Any,
    table_batches: Sequence[Mapping[str, Any]],
    args: Any = None,
    *,
    plugin_dir: Path | None = None,
) -> None:
    """Entry point for a data-writes trigger. Never raises: a failure is logged and the trigger
    keeps running for the next flush.

    ``plugin_dir`` is where ``config_file_path`` is looked up when ``PLUGIN_DIR`` is unset (the
    directory plugin passes the folder it was loaded from)."""
    log = CallLog(influxdb3_local, LOG_LABEL)
    try:
        state = _trigger_state(influxdb3_local, args, log, plugin_dir)
        if state is None:
            return
        log.hide(state.secrets)
        measurement = state.config.measurement
        queued = Queued()
        if type(table_batches) is not list and not isinstance(table_batches, list | tuple):
            log.warn(f"table_batches is not a list ({type(table_batches).__name__}); ignored")
            table_batches = ()
        with state.lock:
            for batch in table_batches:
                if isinstance(batch, Mapping) and batch.get("table_name") == measurement:
                    rows = batch.get("rows")
                    if _is_rows(rows):
                        _process_table(influxdb3_local, state, rows, log, queued)
        end_call(state, queued, log)
    except Exception as error:  # the trigger must survive anything
        log.error(f"call failed with {type(error).__name__}: {error}")


def _is_rows(rows: object) -> TypeGuard[Sequence[Any]]:
    """Whether a batch's ``rows`` is a non-empty sequence of rows (the engine's: a list)."""
    if type(rows) is list:
        return bool(rows)
    return isinstance(rows, Sequence) and not isinstance(rows, str | bytes) and bool(rows)


# -- configuration ---------------------------------------------------------------------------


def _trigger_state(
    engine: Any, args: Any, log: CallLog, plugin_dir: Path | None = None
) -> TriggerState | None:
    state = cached_state(engine, STATE_KEY, args, log, plugin_dir, _build_state)
    if state is not None and not state.table_checked:  # a new config: does its table exist?
        state.table_checked = True
        _check_table_exists(engine, state.config.measurement, log)
    return state


def _build_state(
    config: Config, common: dict[str, Any], previous: TriggerState | None, log: CallLog
) -> TriggerState:
    """The state of a new config (``previous``'s outbox and outcomes are in ``common``)."""
    log.info(
        "configuration loaded: "
        f"measurement={config.measurement}, "
        f"thresholds={' @ '.join(t.describe() for t in config.thresholds)}, "
        f"senders={'.'.join(config.sender_names)}, "
        f"state_change_count={config.state_change_count}, notifier={config.delivery.url}"
        f"{_lifecycle_text(config)}"
    )
    return TriggerState(
        **common,
        detector=Detector(
            config.measurement,
            config.thresholds,
            config.state_change_count,
            # severity inhibition needs to know when an incident is over, even unnotified
            config.recovery_count if config.notify_recovery or config.noise.inhibit else 0,
        ),
        router=_router(config),
        silences=(
            SilenceReader(config.noise.silences_table, config.noise.silences_refresh_s)
            if config.noise.silences_table
            else None
        ),
    )


def _router(config: Config) -> Router:
    return Router(
        inhibitor=Inhibitor() if config.noise.inhibit else None,
        repeats=RepeatGate(config.repeat_interval_ns) if config.repeat_interval_ns else None,
        notify_recovery=config.notify_recovery,
    )


def _lifecycle_text(config: Config) -> str:
    parts = []
    if config.notify_recovery:
        parts.append(f"notify_recovery=true, recovery_count={config.recovery_count}")
    if config.repeat_interval_ns:
        parts.append(f"repeat_interval={format_duration_ns(config.repeat_interval_ns)}")
    noise = config.noise
    if noise.levels:
        routes = ", ".join(f"{level}->{'.'.join(names)}" for level, names in noise.routes.items())
        parts.append(f"severity routes {routes}")
    if noise.silences_table:
        parts.append(f"silences_table={noise.silences_table}")
    if noise.maintenance:
        parts.append(f"{len(noise.maintenance)} maintenance window(s)")
    if noise.group_by:
        wait = format_duration_ns(round(noise.group_wait_s * 1e9))
        parts.append(f"group_by={'.'.join(noise.group_by)}, group_wait={wait}")
    if noise.max_per_minute:
        parts.append(f"max_notifications_per_minute={noise.max_per_minute}")
    return "".join(", " + part for part in parts)


def _check_table_exists(engine: Any, measurement: str, log: CallLog) -> None:
    tables: set[str] | None = engine.cache.get("madcheck.tables")
    if tables is None:
        try:
            tables = fetch_tables(engine)
        except Exception as error:
            log.warn(f"could not list tables ({type(error).__name__}); continuing")
            return
        engine.cache.put("madcheck.tables", tables, ttl=SCHEMA_TTL_S)
    if measurement not in tables:
        log.warn(f"table {measurement!r} does not exist yet; waiting for its first write")


# -- detection -------------------------------------------------------------------------------


def _schema(engine: Any, state: TriggerState, rows: Sequence[Any], log: CallLog) -> TableSchema:
    key = state.schema_key
    schema: TableSchema | None = engine.cache.get(key)
    if schema is not None and not has_unknown_columns(rows, schema):
        return schema
    try:
        schema = fetch_schema(engine, state.config.measurement)
        ttl = SCHEMA_TTL_S
    except Exception as error:
        schema = infer_schema(rows, set(state.fields))
        ttl = FALLBACK_TTL_S
        log.warn(
            f"could not read the schema of {state.config.measurement!r} "
            f"({type(error).__name__}); treating string columns as tags: {', '.join(schema.tags)}"
        )
    else:
        missing = [name for name in state.fields if name not in schema.columns]
        if schema.columns and missing:
            log.warn(f"{state.config.measurement!r} has no column {', '.join(missing)} (yet)")
    engine.cache.put(key, schema, ttl=ttl)
    return schema


def _process_table(
    engine: Any, state: TriggerState, rows: Sequence[Any], log: CallLog, queued: Queued
) -> None:
    schema = _schema(engine, state, rows, log)
    config = state.config
    rows, bad_tags = _with_text_tags(rows, schema.tags)
    if config.warm_start.enabled:
        fields: Sequence[str] = state.fields
        if schema.from_database:
            fields = [name for name in fields if name in schema.columns]
        warm_start(
            engine,
            state.detector,
            config.measurement,
            schema.tags,
            fields,
            rows,
            config.warm_start,
            log,
        )
    result = state.detector.process(rows, schema.tags)
    if bad_tags:
        result.skipped[SKIP_BAD_TAGS] += bad_tags
    _log_batch(config.measurement, result, log)
    if result.alerts:  # most calls have none: no routing, no counting
        _route(engine, state, result.alerts, log, queued)
    repeats = state.router.repeats
    withheld = repeats.report() if repeats is not None else None
    if withheld:
        log.info(withheld)


def _route(
    engine: Any, state: TriggerState, alerts: list[Alert], log: CallLog, queued: Queued
) -> None:
    """Each alert through the noise-control stages: queued, recorded, or counted in a line."""
    config = state.config
    unrecorded: list[str] = []
    fates: Counter[str] = Counter()
    silenced_by: Counter[str] = Counter()
    silencer = _silencer(engine, state, log, silenced_by)
    for alert, fate in state.router.route(alerts, silencer):
        fates[fate] += 1
        if fate != SEND and fate not in RECORDED_FATES:
            continue  # a repeat within repeat_interval, or a close only the inhibitor needs
        # sent alerts are recorded as firing/resolved, or capped when the storm cap held them
        recorded = state.notices.queue(alert, queued) if fate == SEND else fate
        fates[CAPPED] += recorded == CAPPED
        problem = _record(engine, config, alert, recorded)
        if problem:
            unrecorded.append(problem)
        if fate == SUPPRESSED:
            _log_suppressed(config, alert, log)
    if unrecorded:
        log.warn(
            f"could not write {len(unrecorded)} alert(s) to {config.alerts_table}: {unrecorded[0]}"
        )
    _log_fates(config, fates, silenced_by, log)


def _log_fates(
    config: Config, fates: Counter[str], silenced_by: Counter[str], log: CallLog
) -> None:
    """One line per kind of held-back alert in this call, never one per alert."""
    if fates[INHIBITED]:
        log.info(
            f"{fates[INHIBITED]} alert(s) inhibited: a higher level of the same series and "
            "field is firing"
        )
    if fates[CAPPED]:
        log.warn(
            f"storm cap: {fates[CAPPED]} alert(s) held back for this minute's summary "
            f"(max_notifications_per_minute={config.noise.max_per_minute}); recorded as capped"
        )
    if silenced_by:
        detail = ", ".join(f"{name} x{n}" for name, n in silenced_by.most_common(5))
        more = len(silenced_by) - 5
        log.info(
            f"{silenced_by.total()} alert(s) silenced, not sent: {detail}"
            + (f" and {more} more" if more > 0 else "")
        )


def _silencer(
    engine: Any, state: TriggerState, log: CallLog, silenced_by: Counter[str]
) -> Silencer | None:
    """Whether an alert is silenced (by a silence row or a maintenance window), naming what
    silenced it; the silences table is read only when a call has an alert to ask about (and
    then at most once per ``silences_refresh``)."""
    reader = state.silences
    windows = state.config.noise.maintenance
    if reader is None and not windows:
        return None
    loaded: list[SilenceSet] = []

    def silenced(alert: Alert) -> str | None:
        if reader is not None and not loaded:
            loaded.append(reader.silences(engine, log))
        silence = loaded[0].matching(alert) if loaded else None
        name = silence.describe() if silence is not None else None
        if name is None:
            window = window_covering(windows, alert)
            name = window.describe() if window is not None else None
        if name is not None:
            silenced_by[name] += 1
        return name

    return silenced


def _with_text_tags(rows: Sequence[Any], tags: Sequence[str]) -> tuple[Sequence[Any], int]:
    """The rows whose tag values are text (or absent), and how many were not.

    The engine always gives tags as ``str``; anything else (a list, a number) could not name a
    series, and an unhashable one would fail the whole batch, so such rows are passed over. The
    usual all-text batch is confirmed with C-level loops only (about 20 ms per 100,000 rows).
    """
    kinds: set[type] = set()
    try:
        for name in tags:
            try:
                kinds.update(map(type, map(itemgetter(name), rows)))
            except KeyError:  # some row lacks the tag: absent reads as None
                kinds.update(map(type, map(dict.get, rows, repeat(name))))
    except TypeError:  # a row that is not a dict: check row by row
        kinds.add(object)
    if kinds <= _TEXT_OR_NONE:
        return rows, 0
    kept = [
        row
        for row in rows
        if not isinstance(row, Mapping)  # the detector counts these itself
        or all(type(value) in _TEXT_OR_NONE for value in map(row.get, tags))
    ]
    return kept, len(rows) - len(kept)


def _log_batch(table: str, result: BatchResult, log: CallLog) -> None:
    if result.outliers:
        detail = ", ".join(f"{field}: {n}" for field, n in sorted(result.outliers.items()))
        log.info(f"{table}: {result.points} points, outlier verdicts {detail}")
    if not result.skipped:
        return
    problems = {reason: n for reason, n in result.skipped.items() if reason != SKIP_MISSING}
    if problems:
        detail = ", ".join(f"{reason} ({n})" for reason, n in sorted(problems.items()))
        log.warn(f"{table}: passed over {sum(problems.values())} value(s): {detail}")


# -- alerts ----------------------------------------------------------------------------------


def render(template: str, alert: Alert) -> str:
    """Fill ``$table``, ``$field``, ... into a notification template; unknown ``$names`` stay."""
    return string.Template(template).safe_substitute(alert.variables())


def _record(engine: Any, config: Config, alert: Alert, state: str) -> str | None:
    """Write ``alert`` in ``state`` to the alerts table; the problem, if that failed (logged per
    call)."""
    if not config.alerts_table:
        return None
    line = partial(
        history_line, config.alerts_table, alert, state, severity_tag=config.noise.levels
    )
    return record(engine, line)


def _template(config: Config, alert: Alert) -> str:
    if alert.resolved:
        return config.recovery_text
    return config.count_text if alert.rule == "count" else config.time_text


def _summary(alert: Alert) -> str:
    """The alert in one log line: which rule, where, when, and the value against its band."""
    variables = alert.variables()
    where = (
        f"{alert.rule} rule {alert.threshold.describe()} on {alert.table} "
        f"[{alert.tags_text or 'no tags'}] at {variables['time']}"
    )
    band = f"{variables['lower']}..{variables['upper']}"
    if alert.resolved:
        return (
            f"{where}: back to normal after {variables['duration']}, value "
            f"{variables['value']} within {band} (alert {alert.alert_id})"
        )
    return f"{where}: value {variables['value']} outside {band} (alert {alert.alert_id})"


def _log_suppressed(config: Config, alert: Alert, log: CallLog) -> None:
    log.info(
        f"alert suppressed, {alert.transitions} state changes in the last "
        f"{alert.threshold.window_count} verdicts (state_change_count="
        f"{config.state_change_count}): {_summary(alert)}"
    )
