"""``process_scheduled_call`` for the MAD check: alerts for series that stopped reporting.

Deployed with ``--trigger-spec every:1m`` (or ``cron:...``) and the same arguments as the
data-writes trigger, plus ``missing_after``. Each call asks the table, in one query, for every
series' last point time within ``missing_lookback`` (the tag names come from the same cached
schema query as ``process_writes``, once an hour):

``SELECT <tags>, MAX("time") AS "last_seen" FROM "<table>" WHERE "time" >= $since
GROUP BY <tags> LIMIT <n>``

which DataFusion (InfluxDB 3) and the local engine both answer. The answer goes to a
``GapTracker`` (``madcheck.detect.gaps``) kept in the trigger's state; its events become
history rows and notifications exactly as the MAD alerts do: the state is found or built by
``madcheck.plugin.trigger_state``, alerts are queued in the trigger's outbox and posted by its
background sender (``madcheck.plugin.delivery``), and a call never waits on the network.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from madcheck.config.settings import DEFAULT_RECOVERY_TEXT, Config
from madcheck.detect.alerts import Tags, rfc3339
from madcheck.detect.gaps import GapTracker, MissingEvent
from madcheck.plugin.calllog import CallLog
from madcheck.plugin.delivery import LOG_LABEL, SCHEDULED_STATE_KEY, Queued, end_call, queue_alert
from madcheck.plugin.history import gap_history_line, record
from madcheck.plugin.schema import SCHEMA_TTL_S, fetch_schema
from madcheck.plugin.trigger_state import AlertingState, cached_state
from madcheck.plugin.warmstart import parse_time_ns

#: Recovery text of a gap when ``notification_recovery_text`` is not set (the MAD rules'
#: default speaks of a field, which a gap has not).
DEFAULT_GAP_RECOVERY_TEXT = (
    "MAD missing data over: $table reports again after $duration of silence. Tags: $tags"
)
#: Most series one call looks at; more are reported and left for the next calls to cover.
MAX_SERIES = 100_000
_NS_PER_S = 1_000_000_000


@dataclass(kw_only=True)
class ScheduledState(AlertingState):
    """What a scheduled trigger keeps between calls."""

    gaps: GapTracker


def process_scheduled_call(
    influxdb3_local: Any, call_time: Any, args: Any = None, *, plugin_dir: Path | None = None
) -> None:
    """Entry point for a scheduled trigger. Never raises: a failure is logged and the trigger
    runs again at its next time.

    ``plugin_dir`` is where ``config_file_path`` is looked up when ``PLUGIN_DIR`` is unset (the
    directory plugin passes the folder it was loaded from)."""
    log = CallLog(influxdb3_local, LOG_LABEL)
    try:
        now_ns = call_time_ns(call_time)
        if now_ns is None:
            log.error(f"call_time is not a datetime ({type(call_time).__name__}); call skipped")
            return
        state = cached_state(
            influxdb3_local,
            SCHEDULED_STATE_KEY,
            args,
            log,
            plugin_dir,
            _build_state,
            scheduled=True,
            refused="no missing-data check",
        )
        if state is None:
            return
        log.hide(state.secrets)
        queued = Queued()
        last_seen = _last_seen(influxdb3_local, state, now_ns, log)
        if last_seen is not None:
            with state.lock:  # overlapping calls (run_async) must not report one gap twice
                events = state.gaps.update(last_seen, now_ns)
                _handle(influxdb3_local, state, events, log, queued)
        end_call(state, queued, log)
    except Exception as error:  # the trigger must survive anything
        log.error(f"call failed with {type(error).__name__}: {error}")


def call_time_ns(call_time: Any) -> int | None:
    """Nanoseconds since the epoch of the engine's ``call_time``.

    InfluxDB 3 passes ``datetime.fromtimestamp(seconds)``: whole seconds, *naive*, in the
    server's local time zone (UTC in its containers), and ``timestamp()`` reads a naive datetime
    back the same way; an aware datetime (the local engine, tests) is read as it says.
    """
    if not isinstance(call_time, datetime):
        return None
    moment = call_time.timestamp()
    return round(moment * 1_000_000) * 1_000


# -- configuration ---------------------------------------------------------------------------


def _build_state(
    config: Config, common: dict[str, Any], previous: ScheduledState | None, log: CallLog
) -> ScheduledState:
    """The state of a new config; the open gaps of ``previous`` carry over (same table)."""
    missing = config.missing
    assert missing is not None  # load_config(scheduled=True) requires it
    gaps = GapTracker(config.measurement, missing.after_ns)
    if previous is not None:
        gaps.carry_over(previous.gaps)
    recovery = ", notify_recovery=true" if config.notify_recovery else ""
    log.info(
        f"configuration loaded: measurement={config.measurement}, missing_after="
        f"{gaps.threshold_text}, missing_lookback={missing.lookback_ns // _NS_PER_S}s, "
        f"senders={'.'.join(config.sender_names)}, notifier={config.delivery.url}{recovery}"
    )
    return ScheduledState(**common, gaps=gaps)


# -- the query -------------------------------------------------------------------------------


def _tag_names(engine: Any, table: str) -> tuple[str, ...]:
    """The table's tags, from the schema query ``process_writes`` uses, cached for an hour."""
    key = f"madcheck.schema.{table}"
    schema = engine.cache.get(key)
    if schema is None:
        schema = fetch_schema(engine, table)
        engine.cache.put(key, schema, ttl=SCHEMA_TTL_S)
    return tuple(schema.tags)


def last_seen_query(table: str, tags: tuple[str, ...]) -> str:
    """The one query of a call (see the module docstring); ``$since`` is an RFC 3339 string."""
    quoted = ", ".join(_quote(name) for name in tags)
    select = f"{quoted}, " if tags else ""
    group = f" GROUP BY {quoted}" if tags else ""
    return (
        f'SELECT {select}MAX("time") AS "last_seen" FROM {_quote(table)} '
        f'WHERE "time" >= $since{group} LIMIT {MAX_SERIES + 1}'
    )


def _last_seen(
    engine: Any, state: ScheduledState, now_ns: int, log: CallLog
) -> dict[Tags, int] | None:
    """Each series' last point time, or None when the table cannot be asked this call."""
    config = state.config
    table = config.measurement
    assert config.missing is not None
    since = max(now_ns - config.missing.lookback_ns, 0)
    try:
        tags = _tag_names(engine, table)
        answer = engine.query(last_seen_query(table, tags), {"since": rfc3339(since)})
    except Exception as error:  # a table not written yet, a busy server: try at the next call
        log.warn(
            f"could not read the last points of {table!r} ({type(error).__name__}: "
            f"{str(error)[:160]}); missing data is checked again at the next call"
        )
        return None
    if not isinstance(answer, list):
        log.warn(f"the last-point query of {table!r} gave no rows; skipped")
        return None
    if len(answer) > MAX_SERIES:
        log.warn(f"{table!r} has more than {MAX_SERIES} series; only {MAX_SERIES} are checked")
        answer = answer[:MAX_SERIES]
    seen: dict[Tags, int] = {}
    unreadable = 0
    for row in answer:
        time_ns = parse_time_ns(row.get("last_seen")) if isinstance(row, Mapping) else None
        if time_ns is None:
            unreadable += 1
            continue
        series = tuple(
            (name, value) for name in tags if isinstance(value := row.get(name), str) and value
        )
        seen[series] = max(time_ns, seen.get(series, time_ns))
    if unreadable and seen:
        log.warn(f"{unreadable} row(s) of the last-point query of {table!r} were unreadable")
    return seen


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- events ----------------------------------------------------------------------------------


def _handle(
    engine: Any,
    state: ScheduledState,
    events: list[MissingEvent],
    log: CallLog,
    queued: Queued,
) -> None:
    """Firing events, and recoveries with ``notify_recovery=true``, get a history row and go
    to the outbox; a recovery without it is only logged."""
    config = state.config
    unrecorded: list[str] = []
    for event in events:
        if event.resolved and not config.notify_recovery:
            log.info(f"data is back: {summary(event)}")
            continue
        if config.alerts_table:
            problem = record(engine, partial(gap_history_line, config.alerts_table, event))
            if problem:
                unrecorded.append(problem)
        queue_alert(
            state,
            queued,
            text=render(_template(config, event), event),
            context=event.as_dict(),
            summary=summary(event),
            kind="recovery" if event.resolved else "alert",
        )
    if unrecorded:
        log.warn(
            f"could not write {len(unrecorded)} alert(s) to {config.alerts_table}: {unrecorded[0]}"
        )


def _template(config: Config, event: MissingEvent) -> str:
    if event.resolved:
        text = config.recovery_text
        return DEFAULT_GAP_RECOVERY_TEXT if text == DEFAULT_RECOVERY_TEXT else text
    assert config.missing is not None
    return config.missing.text


def render(template: str, event: MissingEvent) -> str:
    """Fill ``$table``, ``$last_seen``, ``$duration``, ...; unknown ``$names`` stay."""
    return string.Template(template).safe_substitute(event.variables())


def summary(event: MissingEvent) -> str:
    """The event in one log line."""
    variables = event.variables()
    series = event.tags_text or "no tags"
    where = f"missing rule {variables['missing_after']} on {event.table} [{series}]"
    if event.resolved:
        return (
            f"{where}: data again at {variables['time']} after {variables['duration']} "
            f"(alert {event.alert_id})"
        )
    return (
        f"{where}: no point since {variables['last_seen']}, {variables['duration']} before "
        f"{variables['time']} (alert {event.alert_id})"
    )
