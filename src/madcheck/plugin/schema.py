"""Which columns of a table are tags, asked of the database and cached for an hour (seed).

Tag names decide what a series is. They come from ``information_schema.columns``, where InfluxDB
types a tag ``Dictionary(Int32, Utf8)``. A row carrying a column the cached schema does not know
means the schema grew, so the caller refreshes it early.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA_TTL_S = 3600.0
FALLBACK_TTL_S = 60.0
_TAG_TYPE_PREFIX = "Dictionary("
# user tables live in schema ``iox``; ``system`` has tables of its own (``queries``, ...) whose
# columns must not be taken for a user table's of the same name
_COLUMNS_SQL = (
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'iox' AND table_name = $table"
)


@dataclass(frozen=True)
class TableSchema:
    tags: tuple[str, ...]
    columns: frozenset[str]
    from_database: bool = True


def fetch_schema(engine: Any, table: str) -> TableSchema:
    """Ask the database; raises whatever ``influxdb3_local.query`` raises."""
    rows = engine.query(_COLUMNS_SQL, {"table": table})
    tags = sorted(
        str(row["column_name"])
        for row in rows
        if str(row.get("data_type", "")).startswith(_TAG_TYPE_PREFIX)
    )
    columns = frozenset(str(row["column_name"]) for row in rows)
    return TableSchema(tuple(tags), columns)


def infer_schema(rows: Sequence[Mapping[str, Any]], fields: set[str]) -> TableSchema:
    """When the database cannot be asked: string columns that are not monitored fields."""
    tags = sorted(
        {
            key
            for row in rows
            if isinstance(row, Mapping)
            for key, value in row.items()
            if type(value) is str and key not in fields
        }
    )
    return TableSchema(tuple(tags), frozenset(), from_database=False)


def has_unknown_columns(rows: Sequence[Mapping[str, Any]], schema: TableSchema) -> bool:
    """Whether any row has a column the cached schema lacks (every row is checked: a new tag
    would otherwise split or merge series silently)."""
    if not schema.from_database:
        return False
    known = schema.columns
    if len(rows) == 1 and type(rows[0]) is dict:  # a small flush: no sets to build
        return not rows[0].keys() <= known
    if set(map(type, rows)) == {dict}:
        # the engine's rows: every key gathered in C (set.union reads a dict's keys with their
        # stored hashes, quicker than iterating them), then compared with the known columns
        return not set().union(*rows) <= known
    return any(isinstance(row, Mapping) and not row.keys() <= known for row in rows)


def fetch_tables(engine: Any) -> set[str]:
    """User tables of the trigger's database (``SHOW TABLES``, schema ``iox``)."""
    return {
        str(row["table_name"])
        for row in engine.query("SHOW TABLES")
        if row.get("table_schema", "iox") == "iox"
    }
