"""``madcheck silence add|list|expire``: silences written and read as plain rows.

A silence is just a row of the silences table (docs/noise-control.md), so these commands only
write line protocol and run SQL through the ordinary client (``madcheck.engine.client``): they
work against ``madcheck serve`` and, with ``--host``/``--token``, a real InfluxDB 3 alike.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from typing import Any

from madcheck.config.durations import parse_duration_ns
from madcheck.config.noise import DEFAULT_SILENCES_TABLE
from madcheck.detect.alerts import rfc3339
from madcheck.engine.client import DEFAULT_HOST, TOKEN_ENV, ClientError, EngineClient
from madcheck.engine.line_builder import LineBuilder
from madcheck.engine.timestamps import parse_timestamp_ns
from madcheck.plugin.silences import silences_query
from madcheck.route.silences import Silence, SilenceError, SilenceSet, parse_matchers


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "silence",
        help="add, list or expire silences of MAD alerts",
        description=(
            "Silences are rows of a table (default mad_silences) that the MAD trigger reads: "
            "alerts they match are recorded as silenced and not sent."
        ),
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="silence matching alerts for a while; prints the id")
    add.add_argument(
        "--match", required=True, help="matchers key=value joined by ';' (* wildcards)"
    )
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 2h, 30m")
    add.add_argument("--comment", default="", help="why (shown by silence list)")
    add.add_argument("--starts-at", help="RFC 3339 start (default now)")
    listing = verbs.add_parser("list", help="list silences in force (or every one with --all)")
    listing.add_argument("--all", action="store_true", help="also list ended silences")
    expire = verbs.add_parser("expire", help="end a silence now")
    expire.add_argument("id", metavar="ID", help="the id silence add printed")
    for verb, action in ((add, _add), (listing, _list), (expire, _expire)):
        _add_connection(verb)
        verb.set_defaults(handler=lambda options, act=action: _guarded(act, options))


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--database", required=True, help="the trigger's database")
    parser.add_argument(
        "--table", default=DEFAULT_SILENCES_TABLE, help="the trigger's silences_table"
    )
    parser.add_argument(
        "-H",
        "--host",
        default=os.environ.get("INFLUXDB3_HOST_URL", DEFAULT_HOST),
        help=f"URL of the server (default {DEFAULT_HOST}, env INFLUXDB3_HOST_URL)",
    )
    parser.add_argument("--token", default=None, help=f"API token (default: env {TOKEN_ENV})")


def _guarded(action: Any, options: argparse.Namespace) -> int:
    try:
        return int(action(options) or 0)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _client(options: argparse.Namespace) -> EngineClient:
    return EngineClient(options.host, options.token or os.environ.get(TOKEN_ENV) or None)


def _text_argument(name: str, value: str) -> str:
    if not value.isprintable():
        raise ClientError(f"{name} must not hold control characters or line breaks")
    return value


def silence_line(
    table: str, ident: str, match: str, starts_ns: int, ends_ns: int, comment: str, now_ns: int
) -> str:
    """The line protocol of one silence row."""
    line = LineBuilder(table).tag("id", ident).string_field("match", match)
    line.string_field("starts_at", rfc3339(starts_ns)).string_field("ends_at", rfc3339(ends_ns))
    if comment:
        line.string_field("comment", comment)
    return str(line.time_ns(now_ns).build())


def _write(options: argparse.Namespace, text: str) -> None:
    _client(options).request(
        "POST",
        "/api/v3/write_lp",
        params={"db": options.database, "precision": "ns"},
        data=text.encode("utf-8"),
    )


def _add(options: argparse.Namespace) -> int:
    match = _text_argument("--match", options.match)
    comment = _text_argument("--comment", options.comment)
    try:
        parse_matchers(match)
        duration_ns = parse_duration_ns(options.duration)
    except (SilenceError, ValueError) as error:
        raise ClientError(str(error)) from None
    if duration_ns <= 0:
        raise ClientError("--for must be longer than zero")
    now_ns = time.time_ns()
    starts_ns = now_ns
    if options.starts_at:
        try:
            starts_ns = parse_timestamp_ns(options.starts_at)
        except ValueError as error:
            raise ClientError(f"--starts-at: {error}") from None
    ident = secrets.token_hex(8)
    ends_ns = starts_ns + duration_ns
    _write(options, silence_line(options.table, ident, match, starts_ns, ends_ns, comment, now_ns))
    print(ident)
    return 0


def _read(options: argparse.Namespace) -> SilenceSet:
    client = _client(options)
    tables = client.request(
        "POST",
        "/api/v3/query_sql",
        json_body={"db": options.database, "q": "SHOW TABLES", "format": "json"},
    ).json()
    if not any(isinstance(row, dict) and row.get("table_name") == options.table for row in tables):
        return SilenceSet()
    rows = client.request(
        "POST",
        "/api/v3/query_sql",
        json_body={"db": options.database, "q": silences_query(options.table), "format": "json"},
    ).json()
    usable = [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
    return SilenceSet.from_rows(usable)


def _describe(silence: Silence) -> str:
    comment = f"  # {silence.comment}" if silence.comment else ""
    return (
        f"{silence.id}  {silence.match_text}  {rfc3339(silence.starts_ns)} .. "
        f"{rfc3339(silence.ends_ns)}{comment}"
    )


def _list(options: argparse.Namespace) -> int:
    found = _read(options)
    now_ns = time.time_ns()
    shown = found.silences if options.all else found.active_at(now_ns)
    for silence in shown:
        print(_describe(silence))
    if not shown:
        print("no silences" if options.all else "no silences in force")
    for problem in found.problems[:5]:
        print(f"skipped: {problem}", file=sys.stderr)
    return 0


def _expire(options: argparse.Namespace) -> int:
    found = {silence.id: silence for silence in _read(options).silences}
    silence = found.get(options.id)
    if silence is None:
        raise ClientError(f"no silence {options.id!r} in {options.table}")
    now_ns = time.time_ns()
    starts_ns = min(silence.starts_ns, now_ns)
    _write(
        options,
        silence_line(
            options.table,
            silence.id,
            silence.match_text,
            starts_ns,
            now_ns,
            silence.comment,
            now_ns,
        ),
    )
    print(f"expired {silence.id}")
    return 0
