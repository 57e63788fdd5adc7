"""``influxdb3_local``: the object the Processing Engine hands to every plugin call.

One class serves the tests, ``madcheck test wal_plugin``, ``madcheck replay`` and the local
server: what differs between them is only where queries are answered (``QueryHandler``) and what
happens to log lines and writes afterwards, both of which the caller reads from the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from madcheck.engine.cache import TriggerCache
from madcheck.engine.line_builder import LineBuilder


class QueryHandler(Protocol):
    """Answers ``influxdb3_local.query``: SQL text, ``$name`` parameters, target database."""

    def __call__(
        self, sql: str, params: dict[str, str] | None, database: str
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class LogRecord:
    """One row of ``system.processing_engine_logs``."""

    event_time_ns: int
    trigger_name: str
    log_level: str
    log_text: str


@dataclass
class PendingWrite:
    """A plugin write, applied by the host after the call returns (as the engine does).

    The line is built when the plugin calls ``write``, so a ``LineBuilder`` error reaches the
    plugin there; the host then writes each database's lines of the call as one write with
    ``accept_partial=false``, as InfluxDB 3 does.
    """

    database: str
    line: str


def _no_queries(sql: str, params: dict[str, str] | None, database: str) -> list[dict[str, Any]]:
    raise RuntimeError("this engine has no query support")


def _join_log_args(args: tuple[object, ...]) -> str:
    return " ".join(str(arg) for arg in args)


@dataclass
class EngineAPI:
    """An ``influxdb3_local`` for one trigger.

    ``logs`` and ``writes`` accumulate until the host takes them (``take_logs``/``take_writes``).
    ``log_sink``, when given, also receives each record as it is logged, which is how the local
    server persists logs even if a plugin call later raises.
    """

    database: str
    trigger_name: str = "test_trigger"
    query_handler: QueryHandler = _no_queries
    cache: TriggerCache = field(default_factory=TriggerCache)
    log_sink: Callable[[LogRecord], None] | None = None
    clock_ns: Callable[[], int] = time.time_ns
    logs: list[LogRecord] = field(default_factory=list)
    writes: list[PendingWrite] = field(default_factory=list)

    # -- logging -------------------------------------------------------------------------------
    def info(self, *args: object) -> None:
        self._log("INFO", args)

    def warn(self, *args: object) -> None:
        self._log("WARN", args)

    def error(self, *args: object) -> None:
        self._log("ERROR", args)

    def _log(self, level: str, args: tuple[object, ...]) -> None:
        record = LogRecord(self.clock_ns(), self.trigger_name, level, _join_log_args(args))
        self.logs.append(record)
        if self.log_sink is not None:
            self.log_sink(record)

    # -- queries and writes --------------------------------------------------------------------
    def query(
        self, query: str, args: dict[str, str] | None = None, database: str | None = None
    ) -> list[dict[str, Any]]:
        if args is not None:
            bad = [name for name, value in args.items() if not isinstance(value, str)]
            if bad:
                raise TypeError(f"query parameters must be str values: {', '.join(bad)}")
        return self.query_handler(query, args, database or self.database)

    def write(self, line_builder: LineBuilder) -> None:
        self.writes.append(PendingWrite(self.database, line_builder.build()))

    def write_to_db(self, database: str, line_builder: LineBuilder) -> None:
        self.writes.append(PendingWrite(database, line_builder.build()))

    # -- for the host ----------------------------------------------------------------------------
    def take_logs(self) -> list[LogRecord]:
        taken, self.logs = self.logs, []
        return taken

    def take_writes(self) -> list[PendingWrite]:
        taken, self.writes = self.writes, []
        return taken

    def log_texts(self, level: str | None = None) -> list[str]:
        """The logged texts, optionally of one level: what tests and ``test wal_plugin`` read."""
        return [r.log_text for r in self.logs if level is None or r.log_level == level]
