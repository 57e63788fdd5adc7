"""Settings of the noise-control stages (docs/noise-control.md).

Kept apart from ``settings.py`` so the general config stays readable; ``settings.py`` calls
``sender_routes`` and stores the result in ``Config.noise``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from madcheck.config.durations import parse_seconds
from madcheck.config.quoting import unquote
from madcheck.config.senders import parse_sender_names
from madcheck.config.thresholds import DEFAULT_LEVEL, LEVELS, Threshold
from madcheck.route.grouping import DEFAULT_GROUP_TEXT
from madcheck.route.maintenance import MaintenanceError, MaintenanceWindow, parse_windows

#: arguments this module reads
NOISE_ARGUMENTS = frozenset(
    {
        *(f"senders_{level}" for level in LEVELS),
        "silences_table",
        "silences_refresh",
        "maintenance",
        "group_by",
        "group_wait",
        "notification_group_text",
        "max_notifications_per_minute",
    }
)
DEFAULT_SILENCES_TABLE = "mad_silences"


class NoiseConfigError(ValueError):
    """A noise-control setting the trigger cannot run with."""


@dataclass(frozen=True)
class NoiseSettings:
    #: the channels of each level (``senders_<level>``, or ``senders`` for a level not given)
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: some field has conditions of more than one level: inhibition between them is on
    inhibit: bool = False
    #: levels are in use (a condition with a level other than warning, or a senders_<level>):
    #: the alerts table then has a ``severity`` tag
    levels: bool = False
    #: table of silences (docs/noise-control.md); empty: silences are off
    silences_table: str = DEFAULT_SILENCES_TABLE
    #: how long the silences read from it are used before it is read again (wall clock)
    silences_refresh_s: float = 30.0
    #: recurring quiet periods (``[[maintenance]]`` in the TOML file)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    #: tags whose values group firing alerts into one notification; empty: no grouping
    group_by: tuple[str, ...] = ()
    #: how long (wall clock) a group gathers alerts after its first
    group_wait_s: float = 30.0
    group_text: str = DEFAULT_GROUP_TEXT
    #: notifications per minute per trigger past which alerts are held for a summary; 0: no cap
    max_per_minute: int = 0

    def senders_for(self, level: str) -> tuple[str, ...]:
        return self.routes.get(level) or self.routes.get(DEFAULT_LEVEL, ())


def requested_senders(merged: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """``senders`` and each ``senders_<level>`` given, as lists of names."""
    default = parse_sender_names(merged.get("senders"))
    levels = {
        level: names
        for level in LEVELS
        if (names := parse_sender_names(merged.get(f"senders_{level}")))
    }
    return default, levels


def all_sender_names(default: Sequence[str], levels: Mapping[str, Sequence[str]]) -> list[str]:
    """Every channel any level uses, each once, ``senders`` first."""
    names = list(default)
    for level_names in levels.values():
        names.extend(name for name in level_names if name not in names)
    return names


def unwritable_table_name(table: str) -> bool:
    """Whether the engine cannot write rows to ``table``: InfluxDB 3's LineBuilder refuses a
    space, line protocol cannot carry a control character, and a leading '#' or a backslash
    would turn the row into a comment or an escape."""
    return (
        table.startswith("#")
        or "\\" in table
        or any(c.isspace() or not c.isprintable() for c in table)
    )


def table_name(merged: Mapping[str, Any], name: str, default: str, measurement: str) -> str:
    """A table argument the engine can query and write: empty turns the feature off."""
    raw = merged.get(name)
    table = default if raw is None else (unquote(raw) if isinstance(raw, str) else str(raw))
    if table and unwritable_table_name(table):
        raise NoiseConfigError(
            f"{name} {table!r} cannot be used: give a name without spaces, control characters "
            "or backslashes, not starting with '#'"
        )
    if table == measurement:
        raise NoiseConfigError(f"{name} must differ from measurement ({measurement})")
    return table


def _seconds(merged: Mapping[str, Any], name: str, default: float) -> float:
    raw = merged.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse_seconds(unquote(raw) if isinstance(raw, str) else str(raw))
    except ValueError as error:
        raise NoiseConfigError(f"{name}: {error}") from None


def noise_settings(
    merged: Mapping[str, Any],
    measurement: str,
    default: Sequence[str],
    levels: Mapping[str, Sequence[str]],
    usable: Mapping[str, Any],
    thresholds: Sequence[Threshold],
) -> NoiseSettings:
    """The noise-control settings: each level routed to its usable channels (a level used by a
    condition that would reach none is an error), the silences table. Raises
    ``NoiseConfigError`` naming the argument."""
    routes: dict[str, tuple[str, ...]] = {}
    for level in LEVELS:
        wanted = levels.get(level) or default
        routes[level] = tuple(name for name in wanted if name in usable)
    for level in sorted({t.severity for t in thresholds}, key=LEVELS.index):
        if not routes[level]:
            source = f"senders_{level}" if level in levels else "senders"
            raise NoiseConfigError(
                f"{level} alerts would reach no channel: give {source} a usable sender "
                f"(or senders for every level without senders_<level>)"
            )
    by_field: dict[str, set[str]] = {}
    for threshold in thresholds:
        by_field.setdefault(threshold.field, set()).add(threshold.severity)
    return NoiseSettings(
        routes=routes,
        inhibit=any(len(found) > 1 for found in by_field.values()),
        levels=bool(levels) or any(t.severity != DEFAULT_LEVEL for t in thresholds),
        silences_table=table_name(merged, "silences_table", DEFAULT_SILENCES_TABLE, measurement),
        silences_refresh_s=_seconds(merged, "silences_refresh", 30.0),
        maintenance=_windows(merged.get("maintenance")),
        group_by=_group_by(merged.get("group_by")),
        group_wait_s=_group_wait(merged),
        group_text=_text(merged.get("notification_group_text")) or DEFAULT_GROUP_TEXT,
        max_per_minute=_count(merged, "max_notifications_per_minute", 1_000_000),
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    return unquote(value) if isinstance(value, str) else str(value)


def _group_by(value: object) -> tuple[str, ...]:
    """``region`` / ``region.dc`` (dot-separated, like ``senders``) or a TOML list."""
    names = [str(n) for n in value] if isinstance(value, list) else _text(value).split(".")
    unique: list[str] = []
    for name in (n.strip() for n in names):
        if name and name not in unique:
            unique.append(name)
    if len(unique) > 16:
        raise NoiseConfigError("group_by names at most 16 tags")
    return tuple(unique)


def _group_wait(merged: Mapping[str, Any]) -> float:
    wait = _seconds(merged, "group_wait", 30.0)
    if wait > 3600:
        raise NoiseConfigError("group_wait must be at most 1h: a group is held in memory")
    return wait


def _count(merged: Mapping[str, Any], name: str, maximum: int) -> int:
    raw = merged.get(name)
    if raw is None or raw == "":
        return 0
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(_text(raw) if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise NoiseConfigError(f"{name} must be a whole number") from None
    if not 0 <= value <= maximum:
        raise NoiseConfigError(f"{name} must be between 0 and {maximum}")
    return value


def _windows(value: object) -> tuple[MaintenanceWindow, ...]:
    try:
        return parse_windows(value)
    except MaintenanceError as error:
        raise NoiseConfigError(str(error)) from None
