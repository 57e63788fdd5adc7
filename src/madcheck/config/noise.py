"""Settings of the noise-control stages (docs/noise-control.md): severity routes so far.

Kept apart from ``settings.py`` so the general config stays readable; ``settings.py`` calls
``sender_routes`` and stores the result in ``Config.noise``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from madcheck.config.senders import parse_sender_names
from madcheck.config.thresholds import DEFAULT_LEVEL, LEVELS, Threshold

#: arguments this module reads
NOISE_ARGUMENTS = frozenset(f"senders_{level}" for level in LEVELS)


class NoiseConfigError(ValueError):
    """A noise-control setting the trigger cannot run with."""


@dataclass(frozen=True)
class NoiseSettings:
    #: the channels of each level (``senders_<level>``, or ``senders`` for a level not given)
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: some field has conditions of more than one level: inhibition between them is on
    inhibit: bool = False

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


def noise_settings(
    default: Sequence[str],
    levels: Mapping[str, Sequence[str]],
    usable: Mapping[str, Any],
    thresholds: Sequence[Threshold],
) -> NoiseSettings:
    """Route each level to its usable channels; raises ``NoiseConfigError`` when a level used by
    a condition would reach no channel."""
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
    return NoiseSettings(routes=routes, inhibit=any(len(found) > 1 for found in by_field.values()))
