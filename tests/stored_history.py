"""A stand-in for the table's history, answering the MAD plugin's warm-start query.

``StoredHistory`` wraps another query handler (``SchemaQueries`` for the catalog queries) and
answers ``SELECT <tags>, <fields>, "time" FROM "<table>" WHERE "time" >= $since AND "time" <
$until [AND ((...) OR ...)] ORDER BY "time" DESC LIMIT <n>`` from rows a test stores, as InfluxDB
3 would: ``time`` as int ns (what plugins get), or as RFC 3339 text with ``time_as_text`` (the
local engine, older servers). Anything else goes to the wrapped handler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from madcheck.detect.alerts import rfc3339
from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.plugin.warmstart import parse_time_ns
from tests.support import SchemaQueries

_HISTORY_QUERY = re.compile(
    r'SELECT (?P<columns>.+?) FROM "(?P<table>(?:[^"]|"")+)" WHERE "time" >= \$since '
    r'AND "time" < \$until(?P<series> AND \(.*\))? ORDER BY "time" DESC LIMIT (?P<limit>\d+)'
)


class StoredHistory:
    def __init__(self, catalog: SchemaQueries) -> None:
        self.catalog = catalog
        self.stored: dict[str, list[dict[str, Any]]] = {}
        self.time_as_text = False
        self.calls: list[str] = []

    def __call__(
        self, sql: str, params: dict[str, str] | None, database: str
    ) -> list[dict[str, Any]]:
        self.calls.append(sql)
        match = _HISTORY_QUERY.fullmatch(sql.strip())
        if match is None:
            return self.catalog(sql, params, database)
        return self.history(match, params or {})

    def history(self, match: re.Match[str], params: dict[str, str]) -> list[dict[str, Any]]:
        table = match["table"].replace('""', '"')
        if table not in self.catalog.tables:
            raise ValueError(f"table '{table}' not found")
        columns = [c.strip().strip('"') for c in match["columns"].split(",")]
        since, until = parse_time_ns(params["since"]), parse_time_ns(params["until"])
        assert since is not None and until is not None
        wanted = _named_series(match["series"], params)
        chosen = sorted(
            (
                row
                for row in self.stored.get(table, [])
                if since <= row["time"] < until
                and (wanted is None or any(_matches(row, series) for series in wanted))
            ),
            key=lambda row: row["time"],
            reverse=True,
        )[: int(match["limit"])]
        return [{name: self._cell(row, name) for name in columns} for row in chosen]

    def _cell(self, row: Mapping[str, Any], name: str) -> Any:
        if name == "time":
            return rfc3339(row["time"]) if self.time_as_text else row["time"]
        return row.get(name)


def make_engine_with_history(
    tables: Mapping[str, Mapping[str, list[str]]] | None = None, **kwargs: Any
) -> EngineAPI:
    """``make_engine`` whose queries also answer the warm-start query from ``stored`` rows."""
    catalog = SchemaQueries(tables or {"cpu": {"tags": ["host"], "fields": ["temp", "load"]}})
    kwargs.setdefault("cache", TriggerCache())
    return EngineAPI(database="mydb", query_handler=StoredHistory(catalog), **kwargs)


def _named_series(text: str | None, params: dict[str, str]) -> list[dict[str, Any]] | None:
    """The series an ``AND (("host" = $s0t0 AND "dc" IS NULL) OR ...)`` filter names."""
    if text is None:
        return None
    named = []
    for group in re.findall(r"\(([^()]*)\)", text):
        series: dict[str, Any] = {}
        for name, param in re.findall(r'"([^"]+)" = \$(\w+)', group):
            series[name] = params[param]
        for name in re.findall(r'"([^"]+)" IS NULL', group):
            series[name] = None
        named.append(series)
    return named


def _matches(row: Mapping[str, Any], series: Mapping[str, Any]) -> bool:
    return all(row.get(name) == value for name, value in series.items())
