"""The small translation from InfluxDB 3 SQL (DataFusion) to the SQLite dialect storage runs.

Only what the seed's workflow and the plugins need is translated; everything else goes to SQLite
unchanged, so its error messages reach the user. The translation works on tokens, never inside
string literals or quoted identifiers:

- ``SHOW TABLES`` and ``SHOW COLUMNS FROM t`` become queries on the catalog views;
- ``system.x`` and ``information_schema.x`` name the views storage keeps for them;
- ``INTERVAL '1 hour'`` becomes an integer of nanoseconds (time is stored as int64 ns), so
  ``now() - INTERVAL '1 hour'`` is ordinary arithmetic;
- a string literal or ``$param`` compared with ``time`` (``=``, ``<``, ``BETWEEN`` ...) is read
  as an RFC 3339 timestamp and replaced by its nanoseconds, as is ``'...'::timestamp``.

``$name`` parameters need no translation: SQLite binds them natively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from madcheck.engine.timestamps import parse_timestamp_ns

#: ``system.<name>`` tables the local engine answers.
SYSTEM_TABLES = (
    "processing_engine_logs",
    "processing_engine_triggers",
    "processing_engine_trigger_arguments",
)
#: ``information_schema.<name>`` views the local engine answers.
INFORMATION_SCHEMA_TABLES = ("columns", "tables")

_SCHEMAS = {"system": SYSTEM_TABLES, "information_schema": INFORMATION_SCHEMA_TABLES}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*(?:'|\Z))
  | (?P<quoted>"(?:[^"]|"")*(?:"|\Z))
  | (?P<param>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<>|!=|==|\|\||::|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_COMPARISONS = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})

_INTERVAL_UNITS = {
    "nanosecond": 1,
    "ns": 1,
    "microsecond": 1_000,
    "us": 1_000,
    "millisecond": 1_000_000,
    "ms": 1_000_000,
    "second": 1_000_000_000,
    "sec": 1_000_000_000,
    "s": 1_000_000_000,
    "minute": 60_000_000_000,
    "min": 60_000_000_000,
    "m": 60_000_000_000,
    "hour": 3_600_000_000_000,
    "hr": 3_600_000_000_000,
    "h": 3_600_000_000_000,
    "day": 86_400_000_000_000,
    "d": 86_400_000_000_000,
    "week": 604_800_000_000_000,
    "w": 604_800_000_000_000,
}
_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)")


class TranslationError(ValueError):
    """The query uses InfluxDB SQL the local engine cannot translate; the message says why."""


@dataclass
class _Token:
    kind: str
    text: str


@dataclass
class Translation:
    """SQLite text plus the parameters to bind (``$name`` values, some converted to ns)."""

    sql: str
    params: dict[str, object] = field(default_factory=dict)


def quote_identifier(name: str) -> str:
    """Double-quote an identifier for SQLite (and DataFusion): ``a"b`` -> ``"a""b"``."""
    return '"' + name.replace('"', '""') + '"'


def catalog_view(schema: str, table: str) -> str:
    """The storage view standing for ``schema.table``: ``"system.processing_engine_logs"``."""
    return quote_identifier(f"{schema}.{table}")


def translate(sql: str, params: dict[str, str] | None = None) -> Translation:
    """Translate one InfluxDB 3 SQL statement; raise :class:`TranslationError` if it cannot."""
    given = dict(params or {})
    show = _translate_show(sql)
    if show is not None:
        return Translation(show, {})
    tokens = [_Token(m.lastgroup or "op", m.group()) for m in _TOKEN.finditer(sql)]
    significant = [t for t in tokens if t.kind not in ("space", "comment")]
    if not significant:
        raise TranslationError("empty query: write a SELECT statement")
    first = significant[0].text.lower()
    if first not in ("select", "with", "values"):
        raise TranslationError(
            f"unsupported statement {significant[0].text!r}: the local engine answers SELECT "
            "queries, SHOW TABLES and SHOW COLUMNS FROM <table>"
        )
    bound: dict[str, object] = {}
    _rewrite_schema_names(significant)
    _rewrite_intervals(significant)
    _rewrite_casts(significant)
    _rewrite_time_comparisons(significant, given, bound)
    for token in significant:
        if token.kind == "param":
            name = token.text[1:]
            if name not in given:
                raise TranslationError(
                    f"no value given for query parameter ${name}: pass it in params"
                )
            bound.setdefault(name, given[name])
    return Translation("".join(t.text for t in tokens), bound)


def _translate_show(sql: str) -> str | None:
    statement = sql.strip().rstrip(";").strip()
    if re.fullmatch(r"(?i)show\s+tables", statement):
        return "SELECT table_catalog, table_schema, table_name, table_type FROM " + catalog_view(
            "information_schema", "tables"
        )
    match = re.fullmatch(
        r'(?is)show\s+columns\s+(?:from|in)\s+(?:"((?:[^"]|"")+)"|(\S+))', statement
    )
    if match is None:
        return None
    table = match.group(1).replace('""', '"') if match.group(1) else match.group(2)
    literal = "'" + table.replace("'", "''") + "'"
    return (
        "SELECT table_catalog, table_schema, table_name, column_name, data_type, is_nullable "
        f"FROM {catalog_view('information_schema', 'columns')} WHERE table_name = {literal} "
        "ORDER BY ordinal_position"
    )


def _identifier(token: _Token) -> str | None:
    if token.kind == "word":
        return token.text.lower()
    if token.kind == "quoted" and len(token.text) >= 2:
        return token.text[1:-1].replace('""', '"')
    return None


def _rewrite_schema_names(tokens: list[_Token]) -> None:
    for index in range(len(tokens) - 2):
        schema = _identifier(tokens[index])
        if schema not in _SCHEMAS or tokens[index + 1].text != ".":
            continue
        table = _identifier(tokens[index + 2])
        if table is None:
            continue
        known = _SCHEMAS[schema]
        if table not in known:
            raise TranslationError(
                f"table '{schema}.{table}' not found; the local engine has "
                + ", ".join(f"{schema}.{name}" for name in known)
            )
        tokens[index].text = catalog_view(schema, table)
        tokens[index + 1].text = ""
        tokens[index + 2].text = ""


def interval_to_ns(text: str) -> int:
    """``'1 hour'``, ``'2 hours 30 minutes'``, ``'100 milliseconds'`` -> nanoseconds."""
    compact = text.strip().lower()
    parts = _INTERVAL_PART.findall(compact)
    if not parts or _INTERVAL_PART.sub("", compact).strip(" ,"):
        raise TranslationError(
            f"invalid INTERVAL {text!r}: expected e.g. '1 hour', '30 seconds', '2 days 3 hours'"
        )
    total = 0.0
    for number, unit in parts:
        singular = unit[:-1] if unit.endswith("s") and unit[:-1] in _INTERVAL_UNITS else unit
        if singular in ("month", "mon", "year", "y"):
            raise TranslationError(
                f"INTERVAL {text!r}: months and years are not supported by the local engine; "
                "use days"
            )
        if singular not in _INTERVAL_UNITS:
            raise TranslationError(f"INTERVAL {text!r}: unknown unit {unit!r}")
        total += float(number) * _INTERVAL_UNITS[singular]
    return round(total)


def _string_value(token: _Token) -> str:
    return token.text[1:-1].replace("''", "'")


def _rewrite_intervals(tokens: list[_Token]) -> None:
    """``INTERVAL '1 hour'`` and the SQL-standard ``INTERVAL '1' HOUR`` -> nanoseconds."""
    for index in range(len(tokens) - 1):
        if tokens[index].kind == "word" and tokens[index].text.lower() == "interval":
            literal = tokens[index + 1]
            if literal.kind != "string":
                continue
            text = _string_value(literal)
            unit = tokens[index + 2] if index + 2 < len(tokens) else None
            if (
                unit is not None
                and unit.kind == "word"
                and re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", text)
                and _is_interval_unit(unit.text)
            ):
                text = f"{text} {unit.text}"
                unit.text = ""
            tokens[index].text = str(interval_to_ns(text))
            literal.text = ""


def _is_interval_unit(word: str) -> bool:
    lowered = word.lower()
    return lowered in _INTERVAL_UNITS or lowered.rstrip("s") in _INTERVAL_UNITS


def _literal_ns(token: _Token) -> int:
    try:
        return parse_timestamp_ns(_string_value(token))
    except ValueError as error:
        raise TranslationError(f"cannot compare time with {token.text}: {error}") from None


def _rewrite_casts(tokens: list[_Token]) -> None:
    for index in range(len(tokens) - 2):
        literal, cast, target = tokens[index], tokens[index + 1], tokens[index + 2]
        if (
            literal.kind == "string"
            and cast.text == "::"
            and target.kind == "word"
            and target.text.lower() == "timestamp"
        ):
            literal.text = str(_literal_ns(literal))
            literal.kind = "number"
            cast.text = ""
            target.text = ""


def _is_time(token: _Token) -> bool:
    return _identifier(token) == "time"


def _time_starts_at(tokens: list[_Token], index: int) -> bool:
    """``time`` or ``table.time`` begins at ``tokens[index]``."""
    if _is_time(tokens[index]):
        return True
    return index + 2 < len(tokens) and tokens[index + 1].text == "." and _is_time(tokens[index + 2])


def _rewrite_time_comparisons(
    tokens: list[_Token], given: dict[str, str], bound: dict[str, object]
) -> None:
    def convert(token: _Token) -> None:
        if token.kind == "string":
            token.text = str(_literal_ns(token))
            token.kind = "number"
        elif token.kind == "param":
            name = token.text[1:]
            if name not in given:
                raise TranslationError(
                    f"no value given for query parameter ${name}: pass it in params"
                )
            try:
                value = parse_timestamp_ns(given[name])
            except ValueError as error:
                raise TranslationError(f"query parameter ${name}: {error}") from None
            alias = f"_mc_time_{name}"
            bound[alias] = value
            token.text = f"${alias}"
            token.kind = "converted"

    for index, token in enumerate(tokens):
        if token.text in _COMPARISONS and 0 < index < len(tokens) - 1:
            left, right = tokens[index - 1], tokens[index + 1]
            if _is_time(left):
                convert(right)
            elif _time_starts_at(tokens, index + 1):
                convert(left)
        elif token.kind == "word" and token.text.lower() == "between" and index > 0:
            subject = tokens[index - 1]
            if subject.kind == "word" and subject.text.lower() == "not" and index > 1:
                subject = tokens[index - 2]
            if _is_time(subject) and index + 3 < len(tokens):
                convert(tokens[index + 1])
                if tokens[index + 2].text.lower() == "and":
                    convert(tokens[index + 3])
