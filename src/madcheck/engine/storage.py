"""Durable storage for the local engine: one SQLite file per database under the data dir.

Why one file per database: user SQL then runs as written (``SELECT * FROM cpu``) on that
database's connection, every write of a database (data, schema, logs, triggers) commits in one
transaction, and a database is a file a user can copy or delete.

Inside a database file:

- each measurement ``cpu`` is a hidden table ``_mc_data_cpu`` keyed by (series, time), where the
  series is the line's tag set; a VIEW named ``cpu`` shows the tags, fields and ``time`` in
  alphabetical order, as InfluxDB 3 does for ``SELECT *``. Writing the same series and time again
  overwrites only the fields written, as in InfluxDB.
- ``_mc_columns`` records each column's kind (tag, field, time) and InfluxDB data type; the first
  write fixes a column's type and a later conflicting write is a line error.
- ``_mc_logs`` and ``_mc_triggers`` hold ``system.processing_engine_logs`` and the triggers;
  views named ``"system.<table>"`` and ``"information_schema.<table>"`` answer InfluxDB's
  catalog queries (``madcheck.engine.sql`` rewrites the names).

Files use WAL journaling with ``synchronous=FULL``: when a write returns, it survives a crash or
SIGTERM. Per database, one writing connection guarded by a lock serves every writer; queries each
borrow a reading connection from a small pool, so WAL lets them run side by side and alongside a
write: a slow query holds up nobody but its own client.

Hostile input is bounded: a write body is parsed before the write lock is taken, new tables are
created with all their columns in one statement (``ALTER TABLE`` reloads SQLite's whole schema,
which made one write creating thousands of tables quadratic), queries stop after a time limit and
past a result-size limit, and reading connections may not run pragmas (which would reveal file
paths). The data dir's files are created readable by their owner only: trigger arguments may hold
secrets.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from madcheck.engine.api import LogRecord
from madcheck.engine.lineprotocol import (
    FieldValue,
    LineError,
    Point,
    UInt64,
    parse_lines,
    to_engine_row,
)
from madcheck.engine.sql import (
    SYSTEM_TABLES,
    TranslationError,
    catalog_view,
    quote_identifier,
    translate,
)
from madcheck.engine.timestamps import format_rfc3339_ns

INTERNAL_DATABASE = "_internal"
#: InfluxDB 3 Core's default limit of columns per table (tags + fields + time).
MAX_COLUMNS_PER_TABLE = 500
#: InfluxDB 3 Core's limit of tables (its default, server-wide; here per database). It also bounds
#: SQLite's own cost of creating a table, which grows with the number of tables in the file.
MAX_TABLES_PER_DATABASE = 2000
#: Plugin log rows kept per database (oldest dropped first).
DEFAULT_MAX_LOG_ROWS = 100_000
#: A query running longer is stopped (it holds a reading connection and a thread meanwhile).
DEFAULT_QUERY_TIMEOUT_S = 10.0
#: A query whose result would exceed this many bytes (estimated as JSON) is refused.
DEFAULT_MAX_RESULT_BYTES = 32 * 1024 * 1024
#: Reading connections kept open per database between queries (more are opened when needed).
_IDLE_READERS = 4

TAG_TYPE = "Dictionary(Int32, Utf8)"
TIME_TYPE = "Timestamp(Nanosecond, None)"

# SQLite declared types. The first word names a converter applied to query results (time shown
# as RFC 3339, booleans as bool, uint64 above int64 range stored as text); the rest sets affinity.
_SQL_TYPES = {
    "Float64": "REAL",
    "Int64": "INTEGER",
    "UInt64": "MC_U64 BLOB",
    "Utf8": "TEXT",
    "Boolean": "MC_BOOL INTEGER",
    TAG_TYPE: "TEXT",
}

sqlite3.register_converter("MC_TIME", lambda raw: format_rfc3339_ns(int(raw)))
sqlite3.register_converter("MC_BOOL", lambda raw: raw not in (b"0", b""))
sqlite3.register_converter("MC_U64", lambda raw: int(raw))

_DATABASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_HIDDEN_SERIES = "_mc_series"
_RESERVED_TABLE_PREFIXES = ("_mc_", "sqlite_", "system.", "information_schema.")

_SYSTEM_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "processing_engine_logs": (
        ("event_time", TIME_TYPE),
        ("trigger_name", "Utf8"),
        ("log_level", "Utf8"),
        ("log_text", "Utf8"),
    ),
    "processing_engine_triggers": (
        ("trigger_name", "Utf8"),
        ("plugin_filename", "Utf8"),
        ("trigger_specification", "Utf8"),
        ("disabled", "Boolean"),
        ("error_behavior", "Utf8"),
        ("run_async", "Boolean"),
    ),
    "processing_engine_trigger_arguments": (
        ("trigger_name", "Utf8"),
        ("argument_key", "Utf8"),
        ("argument_value", "Utf8"),
    ),
}


class StorageError(Exception):
    """A storage operation failed; the message is meant for the person who asked."""


class QueryError(StorageError):
    """A query could not be answered: bad SQL, unknown table or database."""


class QueryLimitError(QueryError):
    """A query was stopped by the time limit or refused by the result-size limit."""


class InvalidRequestError(StorageError, ValueError):
    """A database name or precision InfluxDB would not accept either."""


class TriggerExistsError(StorageError):
    """A trigger of that name already exists in the database."""


@dataclass(frozen=True)
class Column:
    """One column of a table: ``kind`` is ``tag``, ``field`` or ``time``."""

    name: str
    kind: str
    data_type: str


@dataclass
class WriteResult:
    """What a write stored (table name, engine row; input order) and the lines it rejected."""

    rows: list[tuple[str, dict[str, FieldValue]]] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


@dataclass
class TriggerDefinition:
    """A processing engine trigger as ``create trigger`` defined it.

    ``trigger_arguments`` is empty when the trigger has none (the engine then passes ``None``).
    ``run_async`` and ``error_behavior`` are InfluxDB 3's ``trigger_settings``.
    """

    database: str
    name: str
    plugin_filename: str
    trigger_specification: str
    trigger_arguments: dict[str, str] = field(default_factory=dict)
    disabled: bool = False
    run_async: bool = False
    error_behavior: str = "log"


#: InfluxDB 3's ``--error-behavior`` values (``log`` is its default).
ERROR_BEHAVIORS = ("log", "retry", "disable")


def validate_database_name(name: str) -> str:
    """Return ``name`` if InfluxDB-style valid, else raise :class:`InvalidRequestError`."""
    if not isinstance(name, str) or not _DATABASE_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"invalid database name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter, digit or '_'"
        )
    return name


def _fold(name: str) -> str:
    """SQLite compares identifiers ignoring ASCII case; so must the schema checks."""
    return name.translate(_ASCII_LOWER)


def _value_type(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, UInt64):
        return "UInt64"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    return "Utf8"


def _stored_value(value: FieldValue) -> FieldValue:
    # SQLite integers are signed 64-bit: larger uint64 values are kept as decimal text.
    if isinstance(value, UInt64) and value > 2**63 - 1:
        return str(int(value))
    return value


def _private_file(path: Path) -> None:
    """Create ``path`` (if missing) readable by its owner only; SQLite gives its ``-wal`` and
    ``-shm`` files the mode of the database file."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _reader_authorizer(action: int, *_: object) -> int:
    """Reading connections run no pragma (``pragma_database_list`` names the file's absolute
    path) and attach no file."""
    if action in (sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_ATTACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _series_key(tags: dict[str, str]) -> str:
    return json.dumps(sorted(tags.items()), ensure_ascii=False, separators=(",", ":"))


def _data_table(table: str) -> str:
    return quote_identifier(f"_mc_data_{table}")


_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS _mc_columns (
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    data_type TEXT NOT NULL,
    PRIMARY KEY (table_name, column_name)
);
CREATE TABLE IF NOT EXISTS _mc_logs (
    event_time MC_TIME INTEGER NOT NULL,
    trigger_name TEXT NOT NULL,
    log_level TEXT NOT NULL,
    log_text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _mc_logs_time ON _mc_logs (event_time);
CREATE TABLE IF NOT EXISTS _mc_triggers (
    trigger_name TEXT PRIMARY KEY,
    plugin_filename TEXT NOT NULL,
    trigger_specification TEXT NOT NULL,
    trigger_arguments TEXT NOT NULL,
    disabled MC_BOOL INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    run_async MC_BOOL INTEGER NOT NULL DEFAULT 0,
    error_behavior TEXT NOT NULL DEFAULT 'log'
);
"""

#: Columns added to ``_mc_triggers`` after its first version; files made before get them.
_TRIGGER_SETTINGS_COLUMNS = {
    "run_async": "run_async MC_BOOL INTEGER NOT NULL DEFAULT 0",
    "error_behavior": "error_behavior TEXT NOT NULL DEFAULT 'log'",
}


def _catalog_views_sql() -> str:
    """Views for the system and information_schema tables (recreated on every open)."""
    system_columns = " UNION ALL ".join(
        f"SELECT 'system', '{table}', '{column}', {position}, "
        f"'{'NO' if data_type == TIME_TYPE else 'YES'}', '{data_type}'"
        for table, columns in _SYSTEM_COLUMNS.items()
        for position, (column, data_type) in enumerate(columns, start=1)
    )
    system_tables = " UNION ALL ".join(
        f"SELECT 'public', 'system', '{table}', 'BASE TABLE'" for table in SYSTEM_TABLES
    )
    views = {
        catalog_view("system", "processing_engine_logs"): (
            "SELECT event_time, trigger_name, log_level, log_text FROM _mc_logs"
        ),
        catalog_view("system", "processing_engine_triggers"): (
            "SELECT trigger_name, plugin_filename, trigger_specification, disabled, "
            "error_behavior, run_async FROM _mc_triggers"
        ),
        catalog_view("system", "processing_engine_trigger_arguments"): (
            "SELECT t.trigger_name AS trigger_name, a.key AS argument_key, "
            "a.value AS argument_value FROM _mc_triggers t, json_each(t.trigger_arguments) a"
        ),
        catalog_view("information_schema", "columns"): (
            "SELECT 'public' AS table_catalog, schema_name AS table_schema, table_name, "
            "column_name, ordinal_position, is_nullable, data_type FROM ("
            "SELECT 'iox' AS schema_name, table_name, column_name, "
            "row_number() OVER (PARTITION BY table_name ORDER BY column_name) "
            "AS ordinal_position, CASE kind WHEN 'time' THEN 'NO' ELSE 'YES' END AS is_nullable, "
            "data_type FROM _mc_columns "
            f"UNION ALL {system_columns}) ORDER BY table_schema, table_name, ordinal_position"
        ),
        catalog_view("information_schema", "tables"): (
            "SELECT table_catalog, table_schema, table_name, table_type FROM ("
            "SELECT DISTINCT 'public' AS table_catalog, 'iox' AS table_schema, table_name, "
            "'BASE TABLE' AS table_type FROM _mc_columns "
            f"UNION ALL {system_tables} "
            "UNION ALL SELECT 'public', 'information_schema', 'tables', 'VIEW' "
            "UNION ALL SELECT 'public', 'information_schema', 'columns', 'VIEW') "
            "ORDER BY table_schema, table_name"
        ),
    }
    return "".join(
        f"DROP VIEW IF EXISTS {name}; CREATE VIEW {name} AS {body};\n"
        for name, body in views.items()
    )


class _Database:
    """One database file: a writing connection with its lock, a pool of reading ones, the schema.

    WAL lets each reader run alongside the writer and the other readers, so a slow query holds
    up neither writes nor other queries.
    """

    def __init__(self, name: str, path: Path, clock_ns: Callable[[], int]) -> None:
        self.name = name
        self.path = path
        self.lock = threading.Lock()
        self.clock_ns = clock_ns
        self._readers_lock = threading.Lock()
        self._idle_readers: list[sqlite3.Connection] = []
        self._closed = False
        try:
            _private_file(path)
            self.conn = self._connect(path)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._add_trigger_settings_columns()
            self.conn.executescript(f"BEGIN; {_SCHEMA_SQL} {_catalog_views_sql()} COMMIT;")
            self._idle_readers.append(self._connect_reader())
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"cannot open database file {path}: {error}") from None
        self.schema: dict[str, dict[str, Column]] = {}
        for table, column, kind, data_type in self.conn.execute(
            "SELECT table_name, column_name, kind, data_type FROM _mc_columns"
        ):
            self.schema.setdefault(table, {})[column] = Column(column, kind, data_type)

    def _add_trigger_settings_columns(self) -> None:
        """Give a trigger table of an older file the trigger-settings columns (before the views
        that read them are made)."""
        present = {row[1] for row in self.conn.execute("PRAGMA table_info(_mc_triggers)")}
        if not present:  # a new file: the schema script creates the table whole
            return
        for column, definition in _TRIGGER_SETTINGS_COLUMNS.items():
            if column not in present:
                self.conn.execute(f"ALTER TABLE _mc_triggers ADD COLUMN {definition}")

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            detect_types=sqlite3.PARSE_DECLTYPES,
        )
        conn.execute("PRAGMA synchronous=FULL")
        conn.create_function("now", 0, self.clock_ns)
        conn.create_function("date_bin", 2, _date_bin, deterministic=True)
        conn.create_function("date_bin", 3, _date_bin, deterministic=True)
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect(self.path)
        conn.execute("PRAGMA query_only=ON")
        conn.set_authorizer(_reader_authorizer)
        return conn

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """Borrow an idle reading connection, or open one: queries never wait for each other."""
        with self._readers_lock:
            if self._closed:
                raise QueryError(f"database {self.name!r} is closed")
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            try:
                conn = self._connect_reader()
            except sqlite3.Error as error:
                raise QueryError(f"cannot open database {self.name!r}: {error}") from None
        try:
            yield conn
        finally:
            with self._readers_lock:
                keep = not self._closed and len(self._idle_readers) < _IDLE_READERS
                if keep:
                    self._idle_readers.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        """Fold the WAL into the main file (so the file alone is a complete copy) and close."""
        with self._readers_lock:
            self._closed = True
            readers, self._idle_readers = self._idle_readers, []
        for reader in readers:
            reader.close()
        with self.lock:
            # If this fails the data is still safe in the WAL; the next open replays it.
            with suppress(sqlite3.Error):
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self.conn.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; the caller holds ``self.lock``. Rolled back on any error."""
        self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------------
    def write(
        self, parsed: Iterable[Point | LineError], accept_partial: bool, durable: bool
    ) -> WriteResult:
        """Store parsed lines; the caller parses first, so the lock is held only for storing."""
        with self.lock:
            plan = _SchemaPlan(self.schema)
            points: list[Point] = []
            errors: list[LineError] = []
            for item in parsed:
                if isinstance(item, LineError):
                    errors.append(item)
                    continue
                problem = plan.admit(item)
                if problem is None:
                    points.append(item)
                else:
                    errors.append(LineError(item.line_number, item.line, problem))
            if not points or (errors and not accept_partial):
                return WriteResult([], errors)
            try:
                with self.transaction(durable) as conn:
                    plan.apply(conn)
                    _upsert(conn, points)
            except (sqlite3.Error, ValueError) as error:
                # ValueError: text SQLite cannot store (e.g. lone surrogates from a bad decode).
                raise StorageError(f"could not write to database {self.name!r}: {error}") from None
            self.schema = plan.schema
        return WriteResult([(p.measurement, to_engine_row(p)) for p in points], errors)

    def append_logs(self, records: list[LogRecord], keep: int) -> None:
        """Add log rows, then drop the oldest beyond ``keep`` so a long run cannot fill the disk."""
        rows = [(r.event_time_ns, r.trigger_name, r.log_level, r.log_text) for r in records]
        with self.lock, self.transaction() as conn:
            conn.executemany(
                "INSERT INTO _mc_logs (event_time, trigger_name, log_level, log_text) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "DELETE FROM _mc_logs WHERE rowid <= (SELECT max(rowid) FROM _mc_logs) - ?",
                (keep,),
            )

    # -- queries -----------------------------------------------------------------------------------
    def query(
        self, sql: str, params: dict[str, str] | None, timeout_s: float, max_bytes: int
    ) -> list[dict[str, Any]]:
        """Run one read-only statement; stop it after ``timeout_s``, refuse a result larger than
        ``max_bytes`` (estimated as JSON) before it fills the memory."""
        try:
            translation = translate(sql, params)
        except TranslationError as error:
            raise QueryError(str(error)) from None
        deadline = time.monotonic() + timeout_s
        with self._reader() as reader:
            reader.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                cursor = reader.execute(translation.sql, translation.params)
                names = [column[0] for column in cursor.description or ()]
                rows = _bounded_rows(cursor, names, max_bytes)
            except sqlite3.OperationalError as error:
                if str(error) == "interrupted":
                    raise QueryLimitError(
                        f"query stopped after {timeout_s:g} s (the server's --query-timeout): "
                        "narrow it down, e.g. with WHERE time > now() - INTERVAL '1 hour' or LIMIT"
                    ) from None
                raise QueryError(self._explain(error)) from None
            except (sqlite3.Error, ValueError) as error:
                raise QueryError(self._explain(error)) from None
            finally:
                reader.set_progress_handler(None, 0)
        time_columns = [i for i, name in enumerate(names) if _is_time_column(name)]
        records = []
        for row in rows:
            record = dict(zip(names, row, strict=True))
            for index in time_columns:
                value = row[index]
                if isinstance(value, int) and not isinstance(value, bool):
                    record[names[index]] = format_rfc3339_ns(value)
            records.append(record)
        return records

    def _explain(self, error: Exception) -> str:
        message = str(error)
        missing_table = re.match(r"no such table: (?:main\.)?(.+)", message)
        if missing_table:
            tables = ", ".join(sorted(self.schema)) or "none yet (write some data first)"
            return (
                f"table '{missing_table.group(1)}' not found in database '{self.name}' "
                f"(tables: {tables})"
            )
        if message == "not authorized":
            return "pragmas and ATTACH are not available in queries of the local engine"
        missing_column = re.match(r"no such column: (.+)", message)
        if missing_column:
            return (
                f"column '{missing_column.group(1)}' not found; "
                "SHOW COLUMNS FROM <table> lists a table's columns"
            )
        return (
            f"error in SQL: {message} (the local engine runs SQLite's SQL dialect; "
            "see docs/local-engine-storage.md)"
        )

    # -- triggers ----------------------------------------------------------------------------------
    def save_trigger(self, trigger: TriggerDefinition) -> None:
        with self.lock:
            try:
                with self.transaction() as conn:
                    conn.execute(
                        "INSERT INTO _mc_triggers (trigger_name, plugin_filename, "
                        "trigger_specification, trigger_arguments, disabled, created_ns, "
                        "run_async, error_behavior) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            trigger.name,
                            trigger.plugin_filename,
                            trigger.trigger_specification,
                            json.dumps(trigger.trigger_arguments, sort_keys=True),
                            int(trigger.disabled),
                            self.clock_ns(),
                            int(trigger.run_async),
                            trigger.error_behavior,
                        ),
                    )
            except sqlite3.IntegrityError:
                raise TriggerExistsError(
                    f"trigger '{trigger.name}' already exists in database '{self.name}'"
                ) from None

    def delete_trigger(self, name: str) -> bool:
        with self.lock, self.transaction() as conn:
            return (
                conn.execute("DELETE FROM _mc_triggers WHERE trigger_name = ?", (name,)).rowcount
                > 0
            )

    def set_trigger_disabled(self, name: str, disabled: bool) -> bool:
        with self.lock, self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE _mc_triggers SET disabled = ? WHERE trigger_name = ?", (int(disabled), name)
            )
            return cursor.rowcount > 0

    def triggers(self) -> list[TriggerDefinition]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT trigger_name, plugin_filename, trigger_specification, trigger_arguments, "
                "disabled, run_async, error_behavior FROM _mc_triggers "
                "ORDER BY created_ns, trigger_name"
            ).fetchall()
        return [
            TriggerDefinition(
                self.name,
                name,
                plugin,
                spec,
                json.loads(arguments),
                bool(disabled),
                run_async=bool(run_async),
                error_behavior=error_behavior,
            )
            for name, plugin, spec, arguments, disabled, run_async, error_behavior in rows
        ]


_TIME_RESULT = re.compile(r'(?i)"?time"?|(?:min|max)\((?:\w+\.)?"?time"?\)|date_bin\([^()]*\)')


def _is_time_column(name: str) -> bool:
    """Result columns shown as timestamps even when SQLite lost the column's declared type."""
    return _TIME_RESULT.fullmatch(name) is not None


def _bounded_rows(
    cursor: sqlite3.Cursor, names: list[str], max_bytes: int
) -> list[tuple[Any, ...]]:
    """Fetch rows while their estimated JSON size stays within ``max_bytes``.

    The estimate counts each text's length, 20 bytes for any other value and the column names
    JSON repeats in every row; it is computed per batch with C-level ``map``/``filter``, so it
    costs little. Binary values are refused: InfluxDB's query API has no JSON form for them
    here, and a plugin's ``query`` accepts no such type.
    """
    row_overhead = sum(len(name) + 4 for name in names)
    used = 0
    rows: list[tuple[Any, ...]] = []
    while batch := cursor.fetchmany(1000):
        values = list(chain.from_iterable(batch))
        types = set(map(type, values))
        if bytes in types:
            blob = next(
                n for row in batch for n, v in zip(names, row, strict=True) if type(v) is bytes
            )
            raise QueryError(
                f"column '{blob}' holds binary data, which the query API does not return: "
                f"select hex({blob}) or a text column instead"
            )
        if str in types:
            used += sum(map(len, filter(str.__instancecheck__, values)))
        used += 20 * len(values) + row_overhead * len(batch)
        if used > max_bytes:
            raise QueryLimitError(
                f"query result larger than {max_bytes} bytes (the server's --max-query-result-size)"
                ": add LIMIT, select fewer columns or narrow the time range"
            )
        rows.extend(batch)
    return rows


def _date_bin(interval_ns: int | None, time_ns: int | None, origin_ns: int = 0) -> int | None:
    """DataFusion's ``date_bin(INTERVAL, time[, origin])``: the start of the time's bucket."""
    if interval_ns is None or time_ns is None or interval_ns <= 0:
        return None
    return origin_ns + (time_ns - origin_ns) // interval_ns * interval_ns


class _SchemaPlan:
    """The schema a write would leave behind, checked line by line before anything is stored."""

    def __init__(self, schema: dict[str, dict[str, Column]]) -> None:
        self.schema = dict(schema)
        self.folded_tables = {_fold(table): table for table in schema}
        self.folded_columns: dict[str, dict[str, str]] = {}
        self.new_tables: list[str] = []
        self.new_columns: list[tuple[str, Column]] = []
        self.copied: set[str] = set()

    def admit(self, point: Point) -> str | None:
        """Accept ``point`` into the plan, or say why InfluxDB would reject it."""
        table = point.measurement
        columns = self.schema.get(table)
        if columns is None:
            problem = self._table_problem(table)
            if problem is not None:
                return problem
            columns = {"time": Column("time", "time", TIME_TYPE)}
        additions: list[Column] = []
        for kind, names in (("tag", point.tags), ("field", point.fields)):
            for name in names:
                wanted = TAG_TYPE if kind == "tag" else _value_type(point.fields[name])
                existing = columns.get(name)
                if existing is None:
                    problem = self._column_problem(table, columns, name)
                    if problem is not None:
                        return problem
                    additions.append(Column(name, kind, wanted))
                elif existing.kind != kind:
                    return (
                        f"'{name}' is a {existing.kind} in table '{table}' but this line writes "
                        f"it as a {kind}"
                    )
                elif existing.data_type != wanted:
                    return (
                        f"field '{name}' of table '{table}' has type {existing.data_type} but this "
                        f"line writes {wanted}: a field keeps the type of its first write"
                    )
        if table not in self.schema:
            self.schema[table] = columns
            self.copied.add(table)
            self.folded_tables[_fold(table)] = table
            self.new_tables.append(table)
        if additions:
            if len(columns) + len(additions) > MAX_COLUMNS_PER_TABLE:
                return (
                    f"table '{table}' would have more than {MAX_COLUMNS_PER_TABLE} columns "
                    "(tags, fields and time), the limit InfluxDB 3 applies by default"
                )
            if table not in self.copied:
                self.schema[table] = columns = dict(columns)
                self.copied.add(table)
            for column in additions:
                columns[column.name] = column
                self._folded(table, columns)[_fold(column.name)] = column.name
                self.new_columns.append((table, column))
        return None

    def _table_problem(self, table: str) -> str | None:
        if "\0" in table:
            return "measurement name contains a NUL character, which SQLite names cannot hold"
        folded = _fold(table)
        if folded.startswith(_RESERVED_TABLE_PREFIXES):
            return (
                f"measurement name '{table}' is reserved by the local engine "
                "(names starting with _mc_, sqlite_, system. or information_schema.)"
            )
        if len(self.schema) >= MAX_TABLES_PER_DATABASE:
            return (
                f"measurement '{table}' would be table number {len(self.schema) + 1}: a database "
                f"holds at most {MAX_TABLES_PER_DATABASE} tables, the limit InfluxDB 3 Core applies"
            )
        other = self.folded_tables.get(folded)
        if other is not None:
            return (
                f"measurement '{table}' differs from existing table '{other}' only in letter "
                "case; the local engine (SQLite) cannot keep both"
            )
        return None

    def _folded(self, table: str, columns: dict[str, Column]) -> dict[str, str]:
        folded = self.folded_columns.get(table)
        if folded is None:
            folded = self.folded_columns[table] = {_fold(name): name for name in columns}
        return folded

    def _column_problem(self, table: str, columns: dict[str, Column], name: str) -> str | None:
        if "\0" in name:
            return f"column name {name!r} contains a NUL character, which SQLite names cannot hold"
        folded = _fold(name)
        if folded == _HIDDEN_SERIES:
            return f"column name '{name}' is reserved by the local engine"
        other = self._folded(table, columns).get(folded)
        if other is not None:
            return (
                f"column '{name}' differs from existing column '{other}' of table '{table}' "
                "only in letter case; the local engine (SQLite) cannot keep both"
            )
        return None

    def apply(self, conn: sqlite3.Connection) -> None:
        """Create the new tables and columns and refresh the views of every table touched.

        A new table gets all its columns in its ``CREATE TABLE``: each ``ALTER TABLE ADD COLUMN``
        makes SQLite re-read the whole schema, so one write creating thousands of tables through
        ``ALTER`` cost time quadratic in their number. ``ALTER`` is left for new columns of tables
        that existed before this write.
        """
        register = (
            "INSERT INTO _mc_columns (table_name, column_name, kind, data_type) VALUES (?, ?, ?, ?)"
        )
        created = set(self.new_tables)
        for table in self.new_tables:
            data = _data_table(table)
            columns = [c for name, c in sorted(self.schema[table].items()) if c.kind != "time"]
            declared = "".join(
                f"{quote_identifier(c.name)} {_SQL_TYPES[c.data_type]}, " for c in columns
            )
            conn.execute(
                f"CREATE TABLE {data} ({_HIDDEN_SERIES} TEXT NOT NULL, "
                f"time MC_TIME INTEGER NOT NULL, {declared}PRIMARY KEY ({_HIDDEN_SERIES}, time)) "
                "WITHOUT ROWID"
            )
            conn.execute(f"CREATE INDEX {quote_identifier(f'_mc_time_{table}')} ON {data} (time)")
            conn.executemany(
                register,
                [
                    (table, "time", "time", TIME_TYPE),
                    *((table, c.name, c.kind, c.data_type) for c in columns),
                ],
            )
            conn.execute(f"CREATE VIEW {quote_identifier(table)} AS {self._view_select(table)}")
        altered: dict[str, None] = {}
        for table, column in self.new_columns:
            if table in created:
                continue
            conn.execute(
                f"ALTER TABLE {_data_table(table)} ADD COLUMN "
                f"{quote_identifier(column.name)} {_SQL_TYPES[column.data_type]}"
            )
            conn.execute(register, (table, column.name, column.kind, column.data_type))
            altered[table] = None
        for table in altered:
            view = quote_identifier(table)
            conn.execute(f"DROP VIEW IF EXISTS {view}")
            conn.execute(f"CREATE VIEW {view} AS {self._view_select(table)}")

    def _view_select(self, table: str) -> str:
        listed = ", ".join(quote_identifier(name) for name in sorted(self.schema[table]))
        return f"SELECT {listed} FROM {_data_table(table)}"


def _upsert(conn: sqlite3.Connection, points: list[Point]) -> None:
    """Insert points; a repeated (series, time) overwrites only the fields it writes.

    Consecutive points of the same shape share one statement; order is kept, so the last write
    of a field wins as it does in InfluxDB.
    """
    series: dict[tuple[tuple[str, str], ...], str] = {}

    def series_key(tags: dict[str, str]) -> str:
        items = tuple(tags.items())
        key = series.get(items)
        if key is None:
            key = series[items] = _series_key(tags)
        return key

    index = 0
    while index < len(points):
        first = points[index]
        shape = (first.measurement, tuple(first.tags), tuple(first.fields))
        end = index + 1
        while end < len(points):
            other = points[end]
            if (other.measurement, tuple(other.tags), tuple(other.fields)) != shape:
                break
            end += 1
        table, tag_names, field_names = shape
        columns = [_HIDDEN_SERIES, "time", *tag_names, *field_names]
        updates = ", ".join(
            f"{quote_identifier(name)} = excluded.{quote_identifier(name)}" for name in field_names
        )
        statement = (
            f"INSERT INTO {_data_table(table)} ({', '.join(map(quote_identifier, columns))}) "
            f"VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({_HIDDEN_SERIES}, time) DO UPDATE SET {updates}"
        )
        conn.executemany(
            statement,
            (
                (
                    series_key(p.tags),
                    p.time_ns,
                    *p.tags.values(),
                    *(_stored_value(v) for v in p.fields.values()),
                )
                for p in points[index:end]
            ),
        )
        index = end


class Storage:
    """All databases of one data dir. Every method is safe to call from any thread."""

    def __init__(
        self,
        data_dir: Path,
        clock_ns: Callable[[], int] = time.time_ns,
        max_log_rows: int = DEFAULT_MAX_LOG_ROWS,
        query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._max_log_rows = max_log_rows
        self._query_timeout_s = query_timeout_s
        self._max_result_bytes = max_result_bytes
        self._directory = self.data_dir / "databases"
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self._directory, 0o700)
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._closed = False
        self._databases: dict[str, _Database] = {}
        for path in sorted(self._directory.glob("*.sqlite3")):
            if _DATABASE_NAME.fullmatch(path.stem):
                self._databases[path.stem] = _Database(path.stem, path, clock_ns)
        self.create_database(INTERNAL_DATABASE)

    def close(self) -> None:
        """Close every database file; further calls raise :class:`StorageError`."""
        with self._lock:
            self._closed = True
            databases, self._databases = list(self._databases.values()), {}
        for database in databases:
            database.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- databases ---------------------------------------------------------------------------------
    def databases(self) -> list[str]:
        with self._lock:
            return sorted(self._databases)

    def create_database(self, name: str) -> bool:
        """Create ``name`` if missing; ``True`` if it was created now."""
        validate_database_name(name)
        with self._lock:
            self._check_open()
            if name in self._databases:
                return False
            path = self._directory / f"{name}.sqlite3"
            self._databases[name] = _Database(name, path, self._clock_ns)
            return True

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("storage is closed")

    def _get(self, name: str, create: bool) -> _Database | None:
        if create:
            self.create_database(name)
        with self._lock:
            self._check_open()
            return self._databases.get(name)

    def _existing(self, name: str) -> _Database:
        database = self._get(name, create=False)
        if database is None:
            known = ", ".join(self.databases())
            raise QueryError(f"database '{name}' not found (databases: {known})")
        return database

    def tables(self, database: str) -> list[str]:
        found = self._get(database, create=False)
        return sorted(found.schema) if found else []

    def columns(self, database: str, table: str) -> list[Column]:
        """A table's columns in ``SELECT *`` order; empty for an unknown table."""
        found = self._get(database, create=False)
        columns = found.schema.get(table, {}) if found else {}
        return [columns[name] for name in sorted(columns)]

    # -- data --------------------------------------------------------------------------------------
    def write_lp(
        self,
        database: str,
        body: str,
        precision: str = "auto",
        accept_partial: bool = True,
        default_time_ns: int | None = None,
        no_sync: bool = False,
    ) -> WriteResult:
        """Parse and store line protocol; see :class:`WriteResult`.

        ``accept_partial=False`` stores nothing when any line is rejected. ``no_sync=True``
        trades the fsync of each commit for speed (a crash of the machine, not of the process,
        may then lose the last writes). Raises :class:`InvalidRequestError` for a bad database
        name or precision.
        """
        validate_database_name(database)
        try:
            # Parsed here, before the database's write lock: parsing a large or hostile body
            # then holds up no other writer of the database.
            parsed = list(
                parse_lines(
                    body,
                    precision,
                    self._clock_ns() if default_time_ns is None else default_time_ns,
                )
            )
        except ValueError as error:
            raise InvalidRequestError(str(error)) from None
        if all(isinstance(item, LineError) for item in parsed):
            # Nothing to store: a database is created by its first stored write only.
            return WriteResult([], [item for item in parsed if isinstance(item, LineError)])
        target = self._get(database, create=True)
        assert target is not None
        return target.write(parsed, accept_partial, durable=not no_sync)

    def query(
        self, database: str, sql: str, params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Run one read-only statement; ``time`` comes back as an RFC 3339 string."""
        try:
            validate_database_name(database)
        except InvalidRequestError as error:
            raise QueryError(str(error)) from None
        return self._existing(database).query(
            sql, params, self._query_timeout_s, self._max_result_bytes
        )

    def append_logs(self, database: str, records: Iterable[LogRecord]) -> None:
        """Store plugin log lines in ``database`` and in ``_internal``.

        Each database keeps its newest ``max_log_rows`` log rows.
        """
        batch = list(records)
        if not batch:
            return
        for name in dict.fromkeys([database, INTERNAL_DATABASE]):
            target = self._get(name, create=True)
            assert target is not None
            target.append_logs(batch, self._max_log_rows)

    # -- triggers ----------------------------------------------------------------------------------
    def save_trigger(self, trigger: TriggerDefinition) -> None:
        """Persist a new trigger (creating its database if needed).

        Raises :class:`TriggerExistsError` if the name is taken in that database.
        """
        target = self._get(trigger.database, create=True)
        assert target is not None
        target.save_trigger(trigger)

    def delete_trigger(self, database: str, name: str) -> bool:
        found = self._get(database, create=False)
        return found.delete_trigger(name) if found else False

    def set_trigger_disabled(self, database: str, name: str, disabled: bool) -> bool:
        found = self._get(database, create=False)
        return found.set_trigger_disabled(name, disabled) if found else False

    def triggers(self, database: str | None = None) -> list[TriggerDefinition]:
        """Triggers of one database, or of all of them (by database, then creation order)."""
        names = [database] if database is not None else self.databases()
        found: list[TriggerDefinition] = []
        for name in names:
            target = self._get(name, create=False)
            if target is not None:
                found.extend(target.triggers())
        return found
