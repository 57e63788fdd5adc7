"""Trigger specifications and trigger arguments, as ``influxdb3`` spells them.

Shared by the server (which validates what it is asked to create) and the command line (which
splits ``--trigger-arguments`` exactly as ``influxdb3`` does), so both agree on every edge case.
"""

from __future__ import annotations

from dataclasses import dataclass

from madcheck.engine.schedule import Schedule, ScheduleError, parse_schedule


class TriggerSpecError(ValueError):
    """A trigger specification this engine cannot run."""


@dataclass(frozen=True)
class TriggerSpec:
    """A parsed ``--trigger-spec``.

    ``kind`` is ``"writes"`` for ``all_tables`` and ``table:NAME`` (``table`` set for the latter),
    ``"request"`` for ``request:PATH`` (``path`` set) and ``"schedule"`` for ``every:DURATION``
    and ``cron:EXPR`` (``schedule`` set; see ``madcheck.engine.schedule``).
    """

    kind: str
    table: str | None = None
    path: str | None = None
    schedule: Schedule | None = None

    def matches_table(self, table_name: str) -> bool:
        return self.kind == "writes" and (self.table is None or self.table == table_name)


def parse_trigger_spec(text: str) -> TriggerSpec:
    """Parse ``all_tables``, ``table:NAME``, ``request:PATH``, ``every:DURATION`` or
    ``cron:EXPR``, refusing what InfluxDB 3 refuses."""
    spec = text.strip()
    if spec == "all_tables":
        return TriggerSpec("writes")
    prefix, _, rest = spec.partition(":")
    if prefix == "table" and rest:
        return TriggerSpec("writes", table=rest)
    if prefix == "request" and rest:
        path = rest.strip("/")
        if not path:
            raise TriggerSpecError("request trigger needs a path, e.g. request:notify")
        return TriggerSpec("request", path=path)
    if prefix in ("every", "cron"):
        try:
            return TriggerSpec("schedule", schedule=parse_schedule(spec))
        except ScheduleError as error:
            raise TriggerSpecError(f"invalid trigger spec {text!r}: {error}") from None
    raise TriggerSpecError(
        f"invalid trigger spec {text!r}: expected all_tables, table:NAME, request:PATH, "
        "every:DURATION or cron:EXPR"
    )


def parse_trigger_arguments(text: str | None) -> dict[str, str]:
    """Split ``k=v,k2=v2`` as ``influxdb3`` does: on every comma, then at the first ``=``.

    A value therefore cannot contain a comma; a piece without ``=`` is an error rather than a
    silently dropped argument.
    """
    if text is None or not text.strip():
        return {}
    arguments: dict[str, str] = {}
    for piece in text.split(","):
        key, sep, value = piece.partition("=")
        if not sep or not key:
            raise ValueError(
                f"invalid trigger argument {piece!r}: expected key=value "
                "(arguments are separated by commas, so a value cannot contain one)"
            )
        arguments[key] = value
    return arguments
