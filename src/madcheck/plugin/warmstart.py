"""Warm start: refill the windows of series the trigger has not seen since it (re)started.

The engine's cache dies with the server, and with it every window; without help the trigger
would give no verdict for ``window_count`` points per series, which at one point a minute is
hours of blindness. The points are still in the table, so one query per call fetches the recent
history of the series that call brings and feeds it to the detector before the batch.

The query is plain SQL both InfluxDB 3 and the local engine answer:
``SELECT <tags>, <fields>, "time" FROM "<table>" WHERE "time" >= $since AND "time" < $until
[AND ((<tag> = $s0t0 AND ...) OR ...)] ORDER BY "time" DESC LIMIT <n>``, with ``$since`` and
``$until`` as RFC 3339 strings (how InfluxDB documents time parameters) and the new series named
when they are few. Rows at or after a series' earliest time in the batch are dropped, as the batch
itself holds them (the table may already show them). ``time`` is read as InfluxDB 3 returns it to
plugins (an int of nanoseconds) or as an RFC 3339 string (the local engine, older servers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from madcheck.config.settings import WarmStartSettings
from madcheck.detect.alerts import rfc3339
from madcheck.detect.detector import Detector
from madcheck.plugin.calllog import CallLog

Key = tuple[Any, ...]
#: up to this many new series in one call, the history query names them (see _series_filter)
MAX_FILTERED_SERIES = 16

# the engine's own timestamp range: i64 nanoseconds from 1677 to 2262
_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def warm_start(
    engine: Any,
    detector: Detector,
    table: str,
    tag_names: Sequence[str],
    fields: Sequence[str],
    rows: Sequence[Any],
    settings: WarmStartSettings,
    log: CallLog,
) -> None:
    """Prime ``detector`` with the stored history of the batch's new series; never raises."""
    earliest = _new_series(detector, tag_names, rows)
    if not earliest or not fields or settings.lookback_ns <= 0:
        return
    since = max(min(earliest.values()) - settings.lookback_ns, 0)
    until = max(earliest.values())
    params = {"since": rfc3339(since), "until": rfc3339(until)}
    sql = (
        f"SELECT {', '.join(_quote(name) for name in (*tag_names, *fields))}, "
        f'"time" FROM {_quote(table)} WHERE "time" >= $since AND "time" < $until'
        f"{_series_filter(tag_names, list(earliest), params)} "
        f'ORDER BY "time" DESC LIMIT {settings.max_rows}'
    )
    try:
        answer = engine.query(sql, params)
    except Exception as error:  # a missing table or a busy server must not cost the batch
        log.warn(
            f"warm start of {len(earliest)} new series skipped, the history query failed "
            f"({type(error).__name__}: {_short(error)}); their windows fill from new points"
        )
        return
    history, unreadable = _history(answer, tag_names, earliest, since)
    primed = detector.prime(history, tag_names)
    detail = f", {unreadable} unreadable row(s) ignored" if unreadable else ""
    log.info(
        f"warm start: {len(earliest)} new series of {table}, {primed} value(s) from "
        f"{len(history)} stored row(s) since {rfc3339(since)}{detail}"
    )


def _series_filter(tag_names: Sequence[str], keys: list[Key], params: dict[str, str]) -> str:
    """`` AND (("host" = $s0t0) OR ...)`` naming the new series, when they are few.

    A call after the first usually brings one or two new series; without the filter their few
    rows would compete for the row limit with every other series of the table. Many new series
    (a restart) are read unfiltered: a long ``OR`` costs the server more than it saves.
    """
    if not tag_names or len(keys) > MAX_FILTERED_SERIES:
        return ""
    alternatives = []
    for s, key in enumerate(keys):
        terms = []
        for t, (name, value) in enumerate(zip(tag_names, key, strict=True)):
            if value is None:
                terms.append(f"{_quote(name)} IS NULL")
            else:
                params[f"s{s}t{t}"] = value
                terms.append(f"{_quote(name)} = $s{s}t{t}")
        alternatives.append("(" + " AND ".join(terms) + ")")
    return " AND (" + " OR ".join(alternatives) + ")"


def _new_series(
    detector: Detector, tag_names: Sequence[str], rows: Sequence[Any]
) -> dict[Key, int]:
    """The earliest batch time of each series the detector does not track yet.

    Every call asks this of every row, so engine-shaped batches (dicts with every tag) are read
    with C-level loops: the usual answer, "none", costs one pass over the rows and one set
    difference, and the rows' times are only read when some series is new.
    """
    keys = _keys(tag_names, rows)
    if keys is None:
        return _new_series_row_by_row(detector, tag_names, rows)
    new = detector.untracked(keys)
    if not new:
        # every row's series is tracked, which is also what the row-by-row reading would find
        return {}
    times = _times(rows)
    if times is None:
        return _new_series_row_by_row(detector, tag_names, rows)
    earliest: dict[Any, int] = {}
    for key, time_ns in zip(keys, times, strict=True):
        if key in new and (key not in earliest or time_ns < earliest[key]):
            earliest[key] = time_ns
    if len(tag_names) == 1:
        return {(key,): time_ns for key, time_ns in earliest.items()}
    return earliest


def _keys(tag_names: Sequence[str], rows: Sequence[Any]) -> list[Any] | None:
    """The rows' series keys as the detector keys them (one tag: the bare value), or None when
    some row lacks a tag or is not a mapping."""
    if not tag_names:
        return [()] * len(rows)
    try:
        return list(map(itemgetter(*tag_names), rows))
    except (KeyError, TypeError, IndexError):
        return None


def _times(rows: Sequence[Any]) -> list[int] | None:
    """The rows' times, or None unless every one is an int in the engine's range."""
    try:
        times = list(map(itemgetter("time"), rows))
    except (KeyError, TypeError, IndexError):
        return None
    if times and (set(map(type, times)) != {int} or min(times) < _MIN_NS or max(times) > _MAX_NS):
        return None
    return times


def _new_series_row_by_row(
    detector: Detector, tag_names: Sequence[str], rows: Sequence[Any]
) -> dict[Key, int]:
    """``_new_series`` for batches with missing tags, odd rows or bad times."""
    earliest: dict[Key, int] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        time_ns = row.get("time")
        if type(time_ns) is not int or not _MIN_NS <= time_ns <= _MAX_NS:
            continue
        if detector.tracks(row, tag_names):
            continue
        key = tuple(row.get(name) for name in tag_names)
        if key not in earliest or time_ns < earliest[key]:
            earliest[key] = time_ns
    return earliest


def _history(
    answer: Any, tag_names: Sequence[str], earliest: Mapping[Key, int], since: int
) -> tuple[list[dict[str, Any]], int]:
    """The rows to prime with, oldest first, ``time`` as int ns; and how many were unreadable."""
    usable: list[dict[str, Any]] = []
    unreadable = 0
    for row in answer if isinstance(answer, list) else ():
        if not isinstance(row, Mapping):
            unreadable += 1
            continue
        time_ns = parse_time_ns(row.get("time"))
        key = tuple(row.get(name) for name in tag_names)
        if time_ns is None or not all(type(tag) is str or tag is None for tag in key):
            unreadable += 1
            continue
        first = earliest.get(key)
        if first is None or not since <= time_ns < first:
            continue  # another series, or a point this batch brings itself
        usable.append({**row, "time": time_ns})
    usable.sort(key=lambda row: int(row["time"]))
    return usable, unreadable


def parse_time_ns(value: object) -> int | None:
    """Nanoseconds since the epoch from an int, a ``datetime`` or an RFC 3339 string."""
    if type(value) is int:
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        return None
    seconds = int(moment.timestamp())
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _short(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
