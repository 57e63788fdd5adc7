"""The InfluxDB-to-SQLite translation and timestamp text, as a query author meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from madcheck.engine.sql import TranslationError, interval_to_ns, translate
from madcheck.engine.storage import QueryError, Storage
from madcheck.engine.timestamps import format_rfc3339_ns, parse_timestamp_ns

NOW = 1_764_446_400_000_000_000  # 2025-11-29T20:00:00Z
MINUTE = 60 * 10**9


@pytest.fixture
def storage(tmp_path: Path):
    store = Storage(tmp_path, clock_ns=lambda: NOW)
    lines = [f"ev,kind=k{i % 2} n={i}i,note=\"time > 'x'\" {NOW - i * MINUTE}" for i in range(6)]
    assert store.write_lp("db", "\n".join(lines), precision="ns").errors == []
    yield store
    store.close()


def ns(storage: Storage, sql: str, params: dict[str, str] | None = None) -> list[int]:
    return [row["n"] for row in storage.query("db", sql, params)]


# -- timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (NOW, "2025-11-29T20:00:00"),
        (NOW + 500_000_000, "2025-11-29T20:00:00.500"),
        (NOW + 1_000, "2025-11-29T20:00:00.000001"),
        (NOW + 1, "2025-11-29T20:00:00.000000001"),
        (NOW + 123_456_780, "2025-11-29T20:00:00.123456780"),
        (0, "1970-01-01T00:00:00"),
        (-1, "1969-12-31T23:59:59.999999999"),
    ],
)
def test_times_are_formatted_like_influxdb_json(value, text):
    assert format_rfc3339_ns(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2025-11-29T20:00:00Z", NOW),
        ("2025-11-29T20:00:00", NOW),
        ("2025-11-29 20:00:00", NOW),
        ("2025-11-29T21:30:00+01:30", NOW),
        ("2025-11-29T19:00:00-0100", NOW),
        ("2025-11-29T20:00:00.000000001Z", NOW + 1),
        ("2025-11-29T20:00:00.5Z", NOW + 500_000_000),
        ("2025-11-29", NOW - 20 * 3600 * 10**9),
        (str(NOW), NOW),
    ],
)
def test_timestamp_literals_accepted(text, value):
    assert parse_timestamp_ns(text) == value


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01T00:00:00Z", "2025-11-29T20:00:00 UTC"])
def test_bad_timestamp_literals_are_rejected(text):
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_timestamp_ns(text)


# -- intervals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 hour", 3_600 * 10**9),
        ("2 hours 30 minutes", 9_000 * 10**9),
        ("100 milliseconds", 10**8),
        ("1.5 days", 129_600 * 10**9),
        ("1 week", 604_800 * 10**9),
        ("30s", 30 * 10**9),
        ("10 MINUTES", 600 * 10**9),
    ],
)
def test_intervals(text, value):
    assert interval_to_ns(text) == value


@pytest.mark.parametrize(
    ("text", "fragment"), [("soon", "invalid INTERVAL"), ("3 fortnights", "unknown unit")]
)
def test_bad_intervals(text, fragment):
    with pytest.raises(TranslationError, match=fragment):
        interval_to_ns(text)


# -- translation, seen through queries -------------------------------------------------------------


def test_reversed_and_qualified_time_comparisons(storage):
    sql = "SELECT n FROM ev WHERE '2025-11-29T19:57:00Z' < ev.time ORDER BY n"
    assert ns(storage, sql) == [0, 1, 2]
    assert ns(storage, "SELECT n FROM ev WHERE \"time\" = '2025-11-29T19:59:00Z'") == [1]


def test_not_between(storage):
    sql = (
        "SELECT n FROM ev WHERE time NOT BETWEEN '2025-11-29T19:56:00Z' "
        "AND '2025-11-29T19:59:00Z' ORDER BY n"
    )
    assert ns(storage, sql) == [0, 5]


def test_sql_standard_interval_with_a_unit_keyword(storage):
    sql = "SELECT n FROM ev WHERE time > now() - INTERVAL '150' SECOND ORDER BY n"
    assert ns(storage, sql) == [0, 1, 2]


def test_timestamp_cast(storage):
    sql = "SELECT n FROM ev WHERE time >= '2025-11-29T19:59:00Z'::timestamp ORDER BY n"
    assert ns(storage, sql) == [0, 1]


def test_strings_comments_and_tags_are_left_alone(storage):
    sql = (
        "SELECT n FROM ev -- time > 'not a time'\n"
        "WHERE note = 'time > ''x''' AND kind = $kind AND n >= $min ORDER BY n"
    )
    assert ns(storage, sql, {"kind": "k1", "min": "2"}) == [3, 5]


def test_a_time_parameter_may_also_be_used_as_a_plain_value(storage):
    sql = "SELECT n, $since AS since FROM ev WHERE time > $since ORDER BY n"
    rows = storage.query("db", sql, {"since": "2025-11-29T19:58:30Z"})
    assert rows == [
        {"n": 0, "since": "2025-11-29T19:58:30Z"},
        {"n": 1, "since": "2025-11-29T19:58:30Z"},
    ]


def test_system_names_inside_strings_are_not_rewritten(storage):
    rows = storage.query("db", "SELECT 'system.processing_engine_logs' AS text")
    assert rows == [{"text": "system.processing_engine_logs"}]


def test_quoted_schema_and_table_names(storage):
    rows = storage.query("db", 'SELECT table_name FROM "information_schema"."tables" WHERE '
                               "table_schema = 'iox'")  # fmt: skip
    assert rows == [{"table_name": "ev"}]


def test_show_statements_tolerate_case_semicolons_and_quotes(storage):
    assert storage.query("db", "show tables;") == storage.query("db", "SHOW TABLES")
    assert storage.query("db", 'SHOW COLUMNS IN "ev"') == storage.query(
        "db", "SHOW COLUMNS FROM ev"
    )


def test_time_parameter_that_is_not_a_time(storage):
    with pytest.raises(QueryError, match=r"query parameter \$since: invalid timestamp"):
        storage.query("db", "SELECT n FROM ev WHERE time > $since", {"since": "soon"})


def test_translation_leaves_plain_sql_untouched():
    sql = "SELECT a, count(*) FROM t WHERE b = 'x' GROUP BY a HAVING count(*) > 1 ORDER BY a"
    assert translate(sql).sql == sql
