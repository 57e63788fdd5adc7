"""Answers the catalog queries a plugin asks, from a description of the tables kept in memory.

The MAD plugin learns which columns are tags from ``information_schema.columns`` and checks its
table exists with ``SHOW TABLES``. Where there is no database behind the engine (the tests,
``madcheck replay``) this class answers both, shaped exactly as InfluxDB 3 answers them, from
tables the caller describes and may extend while the plugin runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TAG_TYPE = "Dictionary(Int32, Utf8)"
FIELD_TYPE = "Float64"
TIME_TYPE = "Timestamp(Nanosecond, None)"


class SchemaQueries:
    """A ``QueryHandler`` for ``SHOW TABLES`` and ``information_schema.columns``.

    ``tables`` maps a table name to ``{"tags": [...], "fields": [...]}``. Every query asked is
    kept in ``calls`` so a test can see what the plugin asked and how often.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, list[str]]] | None = None) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {
            name: {"tags": list(spec.get("tags", [])), "fields": list(spec.get("fields", []))}
            for name, spec in (tables or {}).items()
        }
        self.calls: list[str] = []

    def add_columns(self, table: str, tags: Iterable[str] = (), fields: Iterable[str] = ()) -> None:
        """Extend ``table`` (created if new) with columns not described yet."""
        spec = self.tables.setdefault(table, {"tags": [], "fields": []})
        for kind, names in (("tags", tags), ("fields", fields)):
            known = spec[kind]
            known.extend(name for name in names if name not in known)

    def __call__(
        self, sql: str, params: dict[str, str] | None, database: str
    ) -> list[dict[str, Any]]:
        self.calls.append(sql)
        if sql.strip().upper() == "SHOW TABLES":
            return [
                {
                    "table_catalog": "public",
                    "table_schema": "iox",
                    "table_name": name,
                    "table_type": "BASE TABLE",
                }
                for name in self.tables
            ]
        if "information_schema.columns" in sql:
            table = (params or {}).get("table", "")
            spec = self.tables.get(table, {})
            rows = [
                {"table_name": table, "column_name": tag, "data_type": TAG_TYPE}
                for tag in spec.get("tags", [])
            ]
            rows += [
                {"table_name": table, "column_name": name, "data_type": FIELD_TYPE}
                for name in spec.get("fields", [])
            ]
            if spec:
                rows.append({"table_name": table, "column_name": "time", "data_type": TIME_TYPE})
            return rows
        raise ValueError(f"unexpected query: {sql}")
