"""A query handler for ``influxdb3_local.query`` that runs the SQL on Apache DataFusion.

InfluxDB 3 answers a plugin's queries with DataFusion and hands back rows the way
``influxdb3_py_api``'s ``query`` converts them; this handler does the same, so the real plugin code
can be run against the SQL engine it meets in production:

- tables as InfluxDB 3 types them: tags ``Dictionary(Int32, Utf8)``, fields ``Float64``, ``Int64``,
  ``UInt64``, ``Utf8`` or ``Boolean``, ``time`` a non-null ``Timestamp(ns)``; default catalog
  ``public``, schema ``iox``, ``information_schema`` on;
- ``$name`` parameters passed as strings (InfluxDB's ``StatementParams`` hold strings);
- results: Int64, UInt64, Float64, Utf8, Boolean as Python values, ``Timestamp(ns)`` as an int of
  nanoseconds, ``Dictionary(Int32, Utf8)`` as ``str``, NULL as ``None``; any other type raises, as
  the engine's ``Unsupported data type`` error does.

Every SQL string received is kept in ``sent``; those DataFusion could not run in ``failed``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa
from datafusion import SessionConfig, SessionContext

from madcheck.engine.lineprotocol import LineError, Point, UInt64, parse_lines

TAG_TYPE = pa.dictionary(pa.int32(), pa.utf8())


class UnsupportedType(ValueError):
    """A result column of a type the engine's ``query`` cannot convert."""


def _field_type(value: object) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, UInt64):
        return pa.uint64()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.utf8()


def _convert(column: pa.Array, index: int) -> Any:
    """One value of a result column, as the engine's ``query`` converts it."""
    kind = column.type
    if not column[index].is_valid:
        return None
    if kind in (pa.int64(), pa.uint64(), pa.float64(), pa.utf8(), pa.bool_()):
        return column[index].as_py()
    if pa.types.is_timestamp(kind):
        if kind.unit != "ns":  # the engine reads every timestamp as nanoseconds
            raise UnsupportedType(f"Unsupported data type: {kind}")
        return column[index].value
    if pa.types.is_dictionary(kind):
        if kind.index_type != pa.int32() or kind.value_type != pa.utf8():
            raise UnsupportedType(f"Unsupported data type: {kind}")
        return str(column[index].as_py())
    raise UnsupportedType(f"Unsupported data type: {kind}")


class DataFusionQueries:
    """``QueryHandler`` over a DataFusion session holding tables of InfluxDB 3's types."""

    def __init__(self) -> None:
        config = (
            SessionConfig()
            .with_default_catalog_and_schema("public", "iox")
            .with_create_default_catalog_and_schema(True)
            .with_information_schema(True)
        )
        self.context = SessionContext(config)
        self.sent: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self._points: dict[str, list[Point]] = defaultdict(list)

    def write_lp(self, text: str) -> None:
        """Add line protocol to the tables (all of it must parse)."""
        touched = set()
        for parsed in parse_lines(text, "ns", default_time_ns=0):
            if isinstance(parsed, LineError):
                raise ValueError(f"bad line {parsed.line_number}: {parsed.error_message}")
            self._points[parsed.measurement].append(parsed)
            touched.add(parsed.measurement)
        for table in touched:
            self._register(table)

    def _register(self, table: str) -> None:
        points = self._points[table]
        tags = sorted({key for point in points for key in point.tags})
        field_types: dict[str, pa.DataType] = {}
        for point in points:
            for key, value in point.fields.items():
                field_types.setdefault(key, _field_type(value))
        columns: list[pa.Array] = []
        schema_fields: list[pa.Field] = []
        for tag in tags:
            values = pa.array([point.tags.get(tag) for point in points], pa.utf8())
            columns.append(values.dictionary_encode().cast(TAG_TYPE))
            schema_fields.append(pa.field(tag, TAG_TYPE))
        for key, kind in field_types.items():
            columns.append(pa.array([point.fields.get(key) for point in points], kind))
            schema_fields.append(pa.field(key, kind))
        columns.append(pa.array([point.time_ns for point in points], pa.timestamp("ns")))
        schema_fields.append(pa.field("time", pa.timestamp("ns"), nullable=False))
        batch = pa.record_batch(columns, schema=pa.schema(schema_fields))
        if self.context.table_exist(table):
            self.context.deregister_table(table)
        self.context.register_record_batches(table, [[batch]])

    def __call__(
        self, sql: str, params: dict[str, str] | None, database: str
    ) -> list[dict[str, Any]]:
        self.sent.append(sql)
        try:
            result = self.context.sql(sql, param_values=dict(params or {})).to_arrow_table()
            return [
                {name: _convert(batch.column(c), i) for c, name in enumerate(batch.schema.names)}
                for batch in result.to_batches()
                for i in range(batch.num_rows)
            ]
        except Exception as error:
            self.failed.append((sql, str(error)))
            raise
