"""Silences: "quiet for this host until the deploy is done", as rows anyone can write.

A silence is a row of the silences table (``mad_silences`` by default): tag ``id``; string
fields ``match`` (matchers ``key=value`` joined by ``;``), ``ends_at`` (RFC 3339), optional
``starts_at`` (RFC 3339, default the row's time) and ``comment``. The latest row of an id wins,
so writing an id again with ``ends_at`` in the past ends that silence. This module turns such
rows into ``Silence`` objects and answers whether an alert is silenced; reading the table is the
plugin's business (``madcheck.plugin.silences``).

Matchers: a key is a tag name, or ``table`` / ``field`` (which name the alert's table and field
even if a tag has that name); a value may use ``*`` for any run of characters, and nothing else
is special. Every matcher of a silence must hold; an alert without the tag does not match. An
alert is silenced when its *data time* lies in ``[starts_at, ends_at)`` of a silence that
matches it, so a backfill is silenced as the live data was.

Everything here is a stranger's input, so it is bounded: a ``match`` of at most
``MAX_MATCH_CHARS`` characters and ``MAX_MATCHERS`` matchers, values of at most
``MAX_VALUE_CHARS``; ``*`` matching is a few ``str.find`` scans, not a regular expression, so
no pattern can make it slow. A row that breaks a rule is skipped and reported, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from madcheck.detect.alerts import Alert, rfc3339

MAX_MATCH_CHARS = 2048
MAX_MATCHERS = 32
MAX_VALUE_CHARS = 256
MAX_ID_CHARS = 128
MAX_COMMENT_CHARS = 1024

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
#: how query results show ``time`` as text (the local engine; InfluxDB 3 gives int ns): UTC
_RESULT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")


class SilenceError(ValueError):
    """A silence row that cannot be used; the message says why, quoting little of it."""


def parse_rfc3339_ns(text: str) -> int:
    """``2026-12-01T22:00:00Z`` / ``...T23:00:00.5+01:00`` as ns since the epoch; a zone is
    required (a silence's end must not depend on the server's zone)."""
    match = _RFC3339.fullmatch(text.strip()) if len(text) <= 64 else None
    if match is None:
        raise SilenceError(f"not an RFC 3339 time with a zone: {_short(text)!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7) or "", match.group(8)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as error:
        raise SilenceError(f"not a valid time ({error}): {_short(text)!r}") from None
    offset_s = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise SilenceError(f"not a valid zone offset: {_short(text)!r}")
        offset_s = sign * (hours * 3600 + minutes * 60)
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) - offset_s
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def row_time_ns(value: object) -> int | None:
    """A result row's ``time``: int ns (InfluxDB 3) or zone-less UTC text; None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _RESULT_TIME.fullmatch(value):
        try:
            return parse_rfc3339_ns(value + "Z")
        except SilenceError:
            return None
    return None


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches ``pattern``, where ``*`` is any run of characters.

    The literal pieces between stars are looked for left to right with ``str.find`` (taking the
    leftmost place of each is always right when ``*`` is the only wildcard), so the cost is a
    few C-level scans of ``text``, whatever the pattern: no backtracking, no regular expression.
    """
    pieces = pattern.split("*")
    if len(pieces) == 1:
        return pattern == text
    first, *middle, last = pieces
    if len(first) + len(last) > len(text) or not text.startswith(first):
        return False
    if not text.endswith(last):
        return False
    position, end = len(first), len(text) - len(last)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


@dataclass(frozen=True)
class Matcher:
    key: str
    pattern: str

    def holds(self, alert: Alert, tags: Mapping[str, str]) -> bool:
        if self.key == "table":
            value: str | None = alert.table
        elif self.key == "field":
            value = alert.field
        else:
            value = tags.get(self.key)
        return value is not None and glob_match(self.pattern, value)

    def __str__(self) -> str:
        return f"{self.key}={self.pattern}"


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``host=web1;region=eu*`` as matchers; raises ``SilenceError`` for a bad one."""
    if len(text) > MAX_MATCH_CHARS:
        raise SilenceError(f"match is longer than {MAX_MATCH_CHARS} characters")
    parts = [part.strip() for part in text.split(";") if part.strip()]
    if not parts:
        raise SilenceError("match is empty: a silence must say what it silences (e.g. host=web1)")
    if len(parts) > MAX_MATCHERS:
        raise SilenceError(f"match has more than {MAX_MATCHERS} matchers")
    matchers = []
    for part in parts:
        key, equals, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key:
            raise SilenceError(f"matcher {_short(part)!r} is not key=value")
        if len(value) > MAX_VALUE_CHARS or len(key) > MAX_VALUE_CHARS:
            raise SilenceError(f"matcher {_short(part)!r} is longer than {MAX_VALUE_CHARS}")
        if not key.isprintable() or not value.isprintable():
            raise SilenceError(f"matcher {_short(part)!r} holds control characters")
        matchers.append(Matcher(key, value))
    return tuple(matchers)


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_ns: int
    ends_ns: int
    comment: str = ""
    #: the time of the row that set it (the latest row of the id wins)
    written_ns: int = 0

    def covers(self, alert: Alert, tags: Mapping[str, str]) -> bool:
        return self.starts_ns <= alert.time_ns < self.ends_ns and all(
            matcher.holds(alert, tags) for matcher in self.matchers
        )

    @property
    def match_text(self) -> str:
        return ";".join(str(matcher) for matcher in self.matchers)

    def describe(self) -> str:
        return (
            f"silence {self.id} ({self.match_text}, {rfc3339(self.starts_ns)} to "
            f"{rfc3339(self.ends_ns)})"
        )


def silence_from_row(row: Mapping[str, object]) -> Silence:
    """One table row as a ``Silence``; raises ``SilenceError`` naming what is wrong."""
    ident = row.get("id")
    if not isinstance(ident, str) or not ident or len(ident) > MAX_ID_CHARS:
        raise SilenceError("the row has no usable id tag")
    written = row_time_ns(row.get("time"))
    if written is None:
        raise SilenceError(f"silence {_short(ident)!r} has no time")
    match = row.get("match")
    if not isinstance(match, str):
        raise SilenceError(f"silence {_short(ident)!r} has no match string field")
    ends = row.get("ends_at")
    if not isinstance(ends, str):
        raise SilenceError(f"silence {_short(ident)!r} has no ends_at string field")
    starts = row.get("starts_at")
    if starts is not None and not isinstance(starts, str):
        raise SilenceError(f"silence {_short(ident)!r}: starts_at must be a string")
    comment = row.get("comment")
    try:
        silence = Silence(
            id=ident,
            matchers=parse_matchers(match),
            starts_ns=parse_rfc3339_ns(starts) if starts else written,
            ends_ns=parse_rfc3339_ns(ends),
            comment=comment[:MAX_COMMENT_CHARS] if isinstance(comment, str) else "",
            written_ns=written,
        )
    except SilenceError as error:
        raise SilenceError(f"silence {_short(ident)!r}: {error}") from None
    return silence


@dataclass(frozen=True)
class SilenceSet:
    """The silences in force (the latest row of each id), and the rows that were skipped."""

    silences: tuple[Silence, ...] = ()
    problems: tuple[str, ...] = ()

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> SilenceSet:
        """The latest row of each id wins, whatever order the rows come in; a broken latest row
        ends its id's silence (it is what the writer last said) and is reported."""
        latest: dict[str, tuple[int, Mapping[str, object]]] = {}
        problems: list[str] = []
        for row in rows:
            ident, written = row.get("id"), row_time_ns(row.get("time"))
            if not isinstance(ident, str) or written is None:
                problems.append("a row without an id tag or time was skipped")
                continue
            held = latest.get(ident)
            if held is None or written >= held[0]:
                latest[ident] = (written, row)
        silences = []
        for _, row in latest.values():
            try:
                silences.append(silence_from_row(row))
            except SilenceError as error:
                problems.append(str(error))
        silences.sort(key=lambda s: s.id)
        return cls(tuple(silences), tuple(problems))

    def matching(self, alert: Alert) -> Silence | None:
        """The first silence covering ``alert`` at its data time, or None."""
        if not self.silences:
            return None
        tags = dict(alert.tags)
        for silence in self.silences:
            if silence.covers(alert, tags):
                return silence
        return None

    def active_at(self, time_ns: int) -> Sequence[Silence]:
        """The silences not yet over at ``time_ns`` (for listings)."""
        return [s for s in self.silences if s.ends_ns > time_ns]


def _short(text: object, limit: int = 40) -> str:
    value = str(text)
    return value if len(value) <= limit else value[: limit - 3] + "..."
