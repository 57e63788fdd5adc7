"""Sub-commands of the local engine, named and shaped like ``influxdb3``'s.

``serve`` runs the engine; ``create|delete|enable|disable trigger``, ``create token``, ``query``
and ``write`` talk to a running one over HTTP (``--host``, ``--token`` / ``INFLUXDB3_AUTH_TOKEN``);
``install package`` and ``test wal_plugin`` work locally, in this interpreter, which is the one
``madcheck serve`` runs plugins in.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from madcheck.config.durations import parse_duration_s
from madcheck.engine.client import (
    DEFAULT_HOST,
    TOKEN_ENV,
    ClientError,
    EngineClient,
    upload_plugin,
)
from madcheck.engine.formats import FORMATS
from madcheck.engine.schedule import DEFAULT_TEST_SCHEDULE, next_cron_time
from madcheck.engine.triggers import parse_trigger_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_serve(subparsers)
    _register_create(subparsers)
    for verb, help_text in (
        ("delete", "delete a trigger"),
        ("enable", "enable a trigger"),
        ("disable", "disable a trigger (it stops receiving writes and requests)"),
    ):
        parser = subparsers.add_parser(verb, help=help_text, description=help_text)
        objects = parser.add_subparsers(dest="object", metavar="OBJECT", required=True)
        trigger = objects.add_parser("trigger", help=help_text, description=help_text)
        _add_connection(trigger)
        trigger.add_argument("-d", "--database", required=True, help="the trigger's database")
        trigger.add_argument("name", metavar="TRIGGER_NAME", help="the trigger's name")
        trigger.set_defaults(handler=_run_trigger_verb, verb=verb)
    _register_query(subparsers)
    _register_write(subparsers)
    _register_install(subparsers)
    _register_test(subparsers)


# -- shared options ------
def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-H",
        "--host",
        default=os.environ.get("INFLUXDB3_HOST_URL", DEFAULT_HOST),
        help=f"URL of the running server (default {DEFAULT_HOST}, env INFLUXDB3_HOST_URL)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"API token (default: env {TOKEN_ENV}); not needed with serve --without-auth",
    )


def _client(options: argparse.Namespace) -> EngineClient:
    return EngineClient(options.host, options.token or os.environ.get(TOKEN_ENV) or None)


def _guarded(action: Any, options: argparse.Namespace) -> int:
    try:
        return int(action(options) or 0)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# -- serve ------
def _register_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the local engine (HTTP API + processing engine)",
        description=(
            "Run a local, single-node stand-in for InfluxDB 3's write, query and processing "
            "engine API. Data, triggers and token digests live under --data-dir; plugins are "
            "read from --plugin-dir. Stop it with Ctrl-C or SIGTERM: writes are refused, "
            "pending writes are flushed to the triggers, then storage is closed."
        ),
    )
    parser.add_argument(
        "--node-id", default="node0", help="a name for this node (informational; default node0)"
    )
    parser.add_argument(
        "--object-store",
        default="file",
        choices=["file"],
        help="where data is kept; only 'file' (an SQLite database under --data-dir)",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="directory for data")
    parser.add_argument("--plugin-dir", required=True, type=Path, help="directory of plugins")
    parser.add_argument(
        "--http-bind",
        default="127.0.0.1:8181",
        help="ADDRESS:PORT to listen on (default 127.0.0.1:8181; port 0 picks a free port)",
    )
    parser.add_argument(
        "--without-auth",
        action="store_true",
        help="accept requests without a token (otherwise: madcheck create token --admin)",
    )
    parser.add_argument(
        "--wal-flush-interval",
        default="1s",
        help="how often writes are handed to data-writes triggers (default 1s; e.g. 100ms)",
    )
    parser.add_argument(
        "--max-http-request-size",
        type=int,
        default=10 * 1024 * 1024,
        help="largest accepted request body in bytes (default 10485760); larger ones get 413",
    )
    parser.add_argument(
        "--query-timeout",
        default="10s",
        help="stop a query running longer than this (default 10s; e.g. 500ms, 1m)",
    )
    parser.add_argument(
        "--max-query-result-size",
        type=int,
        default=32 * 1024 * 1024,
        help="refuse (400) a query whose result exceeds this many bytes as JSON (default 33554432)",
    )
    parser.add_argument(
        "--http-idle-timeout",
        default="10s",
        help="close a connection that has not sent its whole request within this time of opening "
        "(default 10s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=100,
        help="connections served at once (default 100); when full, the oldest one still sending "
        "its request is closed to make room",
    )
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="comma-separated host names requests may be addressed to besides localhost, "
        "loopback and the bind address (e.g. a container name); other Host headers get 403",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="what the server prints besides plugin logs (default info)",
    )
    parser.set_defaults(handler=_run_serve)


def _parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(
            f"invalid --http-bind {text!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:8181"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


def _run_serve(options: argparse.Namespace) -> int:
    from madcheck.engine.server import EngineServer, ServerConfig
    from madcheck.engine.storage import StorageError

    try:
        host, port = _parse_bind(options.http_bind)
        interval = parse_duration_s(options.wal_flush_interval)
        query_timeout = parse_duration_s(options.query_timeout)
        idle_timeout = parse_duration_s(options.http_idle_timeout)
        if options.max_connections < 1 or options.max_query_result_size < 1:
            raise ValueError("--max-connections and --max-query-result-size must be positive")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not options.plugin_dir.is_dir():
        print(f"error: plugin dir {options.plugin_dir} does not exist", file=sys.stderr)
        return 2
    # PLUGIN_DIR is left alone, as InfluxDB 3 leaves it: a directory plugin finds its
    # config_file_path in the plugin dir it was loaded from.
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    config = ServerConfig(
        data_dir=options.data_dir,
        plugin_dir=options.plugin_dir,
        host=host,
        port=port,
        without_auth=options.without_auth,
        wal_flush_interval_s=interval,
        max_request_bytes=options.max_http_request_size,
        node_id=options.node_id,
        query_timeout_s=query_timeout,
        max_query_result_bytes=options.max_query_result_size,
        idle_timeout_s=idle_timeout,
        max_connections=options.max_connections,
        allowed_hosts=tuple(h.strip() for h in options.allowed_hosts.split(",") if h.strip()),
    )
    try:
        server = EngineServer(config)
    except (OSError, StorageError, ValueError) as exc:
        # a taken port, an unreadable data dir or database file, a damaged tokens.json
        print(f"error: cannot start the server: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"madcheck serve: listening on {server.url} (node {options.node_id})", flush=True)
    if options.without_auth and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {host} without authentication: anyone who can reach this "
            "address can write, query and run plugins",
            flush=True,
        )
    if not options.without_auth and server.tokens.empty:
        print(f"no token yet: run `madcheck create token --admin --host {server.url}`", flush=True)
    while not stop.wait(0.5):
        pass
    print("madcheck serve: shutting down (flushing pending writes to triggers)", flush=True)
    server.stop()
    print("madcheck serve: stopped", flush=True)
    return 0


# -- create token | trigger ------
def _register_create(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("create", help="create a token or a trigger")
    objects = parser.add_subparsers(dest="object", metavar="OBJECT", required=True)

    token = objects.add_parser(
        "token",
        help="create the admin token of a running server",
        description=(
            "Ask a running `madcheck serve` for its admin token. It is granted once, while the "
            "server has no token; the server stores only its SHA-256 digest, so keep the "
            "printed token (e.g. export INFLUXDB3_AUTH_TOKEN=...)."
        ),
    )
    _add_connection(token)
    token.add_argument("--admin", action="store_true", required=True, help="an admin token")
    token.set_defaults(handler=lambda o: _guarded(_create_token, o))

    trigger = objects.add_parser(
        "trigger",
        help="create a processing engine trigger",
        description=(
            "Create a trigger that runs a plugin from the server's --plugin-dir: a .py file, or "
            "a directory holding __init__.py (a multi-file plugin, imported as a package named "
            "after the directory). With --upload the plugin is first sent from this machine to "
            "the server's plugin dir."
        ),
        epilog=(
            "example: madcheck create trigger --database mydb --path madcheck --upload "
            "--trigger-spec all_tables --trigger-arguments "
            "measurement=cpu,mad_thresholds=temp:2.5:20:5,senders=http,"
            "http_webhook_url=http://127.0.0.1:9000/hook mad_trigger"
        ),
    )
    _add_connection(trigger)
    trigger.add_argument("-d", "--database", required=True, help="database the trigger watches")
    plugin = trigger.add_mutually_exclusive_group(required=True)
    plugin.add_argument(
        "--path",
        help=(
            "the plugin: a .py file or a directory with __init__.py, relative to the server's "
            "plugin dir; with --upload, a path on this machine"
        ),
    )
    plugin.add_argument(
        "--plugin-filename",
        dest="path",
        help="old name of --path (deprecated in influxdb3 too)",
    )
    trigger.add_argument(
        "--upload",
        action="store_true",
        help=(
            "send --path (a file, or every .py file of a directory) to the server's plugin dir "
            "first, replacing files of the same name; needs an admin token"
        ),
    )
    trigger.add_argument(
        "--trigger-spec", required=True, help="all_tables, table:NAME or request:PATH"
    )
    trigger.add_argument(
        "--trigger-arguments",
        default=None,
        help="k=v,k2=v2: split on every comma, then at the first '=' (as influxdb3 does)",
    )
    trigger.add_argument("--disabled", action="store_true", help="create it disabled")
    trigger.add_argument(
        "--run-asynchronous",
        action="store_true",
        help="let calls of this trigger overlap instead of running one at a time",
    )
    trigger.add_argument(
        "--error-behavior",
        choices=("log", "retry", "disable"),
        default="log",
        help=(
            "what a failing call leads to: log it and go on (default), retry the same call "
            "until it succeeds, or disable the trigger"
        ),
    )
    trigger.add_argument("name", metavar="TRIGGER_NAME", help="a name for the trigger")
    trigger.set_defaults(handler=lambda o: _guarded(_create_trigger, o))


def _create_token(options: argparse.Namespace) -> int:
    response = _client(options).request("POST", "/api/v3/configure/token/admin")
    token = response.json()["token"]
    print("New admin token created. Store it safely; it is shown only once:\n")
    print(f"Token: {token}\n")
    print(f"Use it with --token or: export {TOKEN_ENV}=<token>")
    return 0


def _create_trigger(options: argparse.Namespace) -> int:
    try:
        arguments = parse_trigger_arguments(options.trigger_arguments)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    client = _client(options)
    plugin = (
        upload_plugin(client, Path(options.path), options.database)
        if options.upload
        else options.path
    )
    client.request(
        "POST",
        "/api/v3/configure/processing_engine_trigger",
        json_body={
            "db": options.database,
            "trigger_name": options.name,
            "plugin_filename": plugin,
            "trigger_specification": options.trigger_spec,
            "trigger_arguments": arguments,
            "disabled": options.disabled,
            "trigger_settings": {
                "run_async": options.run_asynchronous,
                "error_behavior": options.error_behavior,
            },
        },
    )
    print(f"Trigger {options.name} created successfully")
    return 0


def _run_trigger_verb(options: argparse.Namespace) -> int:
    def act(options: argparse.Namespace) -> int:
        identity = {"db": options.database, "trigger_name": options.name}
        client = _client(options)
        path = "/api/v3/configure/processing_engine_trigger"
        if options.verb == "delete":
            client.request("DELETE", path, params=identity)
        else:
            client.request("POST", f"{path}/{options.verb}", params=identity)
        print(f"Trigger {options.name} {options.verb}d successfully")
        return 0

    return _guarded(act, options)


# -- query and write ------
def _register_query(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "query",
        help="run a SQL query",
        description="Run a SQL query on a running server and print the result.",
        epilog=(
            'example: madcheck query --database _internal "SELECT * FROM '
            'system.processing_engine_logs"'
        ),
    )
    _add_connection(parser)
    parser.add_argument("-d", "--database", required=True, help="database to query")
    parser.add_argument(
        "--format", default="pretty", choices=list(FORMATS), help="output format (default pretty)"
    )
    parser.add_argument("sql", metavar="QUERY", help="the SQL text")
    parser.set_defaults(handler=lambda o: _guarded(_query, o))


def _query(options: argparse.Namespace) -> int:
    response = _client(options).request(
        "POST",
        "/api/v3/query_sql",
        json_body={"db": options.database, "q": options.sql, "format": options.format},
    )
    sys.stdout.write(response.text)
    if options.format == "json":
        sys.stdout.write("\n")
    return 0


def _register_write(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "write",
        help="write line protocol",
        description=(
            "Write line protocol to a running server: given as an argument, from --file, or "
            "from standard input."
        ),
        epilog='example: madcheck write --database mydb "cpu,host=a temp=21.5"',
    )
    _add_connection(parser)
    parser.add_argument("-d", "--database", required=True, help="database to write to")
    parser.add_argument("-f", "--file", type=Path, help="read line protocol from this file")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "ns", "us", "ms", "s"],
        help="unit of the timestamps (default auto: guessed from their size)",
    )
    parser.add_argument("lines", metavar="LINE_PROTOCOL", nargs="?", help="the lines to write")
    parser.set_defaults(handler=lambda o: _guarded(_write, o))


def _write(options: argparse.Namespace) -> int:
    if options.file is not None and options.lines is not None:
        raise ClientError("give line protocol either as an argument or with --file, not both")
    if options.file is not None:
        try:
            text = options.file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ClientError(f"cannot read {options.file}: {exc.strerror}") from None
    elif options.lines is not None:
        text = options.lines
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise ClientError("no line protocol: give it as an argument, with --file, or on stdin")
    _client(options).request(
        "POST",
        "/api/v3/write_lp",
        params={"db": options.database, "precision": options.precision},
        data=text.encode("utf-8"),
    )
    print("success")
    return 0


# -- install package ------
def _register_install(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("install", help="install packages for plugins")
    objects = parser.add_subparsers(dest="object", metavar="OBJECT", required=True)
    package = objects.add_parser(
        "package",
        help="pip-install packages into the engine's Python",
        description=(
            f"Run `{Path(sys.executable).name} -m pip install NAME...` with this interpreter "
            f"({sys.executable}), the one `madcheck serve` runs plugins in. Arguments reach pip "
            "verbatim, so a wheel path or a version pin works."
        ),
    )
    package.add_argument("packages", metavar="NAME", nargs="+", help="package names or paths")
    package.set_defaults(handler=_install_packages)


def _install_packages(options: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "pip", "install", *options.packages]
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        print(
            f"error: pip failed with exit status {completed.returncode}; see its message above",
            file=sys.stderr,
        )
    return completed.returncode


# -- test wal_plugin | schedule_plugin ------
def _register_test(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("test", help="try a plugin once, writing nothing")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    wal = kinds.add_parser(
        "wal_plugin",
        help="run a data-writes plugin once on some line protocol",
        description=(
            "Call the plugin's process_writes once with the given lines as one flush and print "
            "{log_lines, database_writes, errors} as JSON, like influxdb3. It runs here, without "
            "a server: the lines go to a scratch database that is thrown away, and the "
            "plugin's writes are checked and shown, never applied."
        ),
        epilog=(
            'example: madcheck test wal_plugin -d mydb --lp "cpu,host=a temp=1" '
            "--input-arguments measurement=cpu,mad_thresholds=temp:2.5:20:5,senders=http,"
            "http_webhook_url=http://127.0.0.1:9000/hook --plugin-dir plugins madcheck"
        ),
    )
    wal.add_argument("--lp", help="line protocol to feed the plugin")
    wal.add_argument("--file", type=Path, help="file of line protocol to feed the plugin")
    _add_test_options(wal)
    wal.set_defaults(handler=_test_wal_plugin)

    schedule = kinds.add_parser(
        "schedule_plugin",
        help="run a scheduled plugin once",
        description=(
            "Call the plugin's process_scheduled_call(influxdb3_local, call_time, args) once, "
            "call_time being the next time --schedule fires (a UTC datetime), and print "
            "{trigger_time, log_lines, database_writes, errors} as JSON, like influxdb3. It "
            "runs here, on a scratch database, empty unless --lp or --file give it lines (an "
            "addition of madcheck's: influxdb3 queries the server's database); the plugin's "
            "writes are never applied."
        ),
        epilog=(
            "example: madcheck test schedule_plugin -d mydb --schedule '0 */5 * * * *' "
            '--lp "cpu,host=a temp=1 1700000000" --input-arguments measurement=cpu,'
            "missing_after=5m,senders=http,http_webhook_url=http://127.0.0.1:9000/hook "
            "--plugin-dir plugins madcheck"
        ),
    )
    schedule.add_argument(
        "--lp", help="line protocol written to the scratch database before the call"
    )
    schedule.add_argument(
        "--file", type=Path, help="file of line protocol written to the scratch database first"
    )
    schedule.add_argument(
        "--schedule",
        default=None,
        help=(
            "cron schedule, six or seven fields with seconds first (sec min hour day-of-month "
            f"month day-of-week [year]); default '{DEFAULT_TEST_SCHEDULE}', the next whole second"
        ),
    )
    _add_test_options(schedule)
    schedule.set_defaults(handler=_test_schedule_plugin)


def _add_test_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d", "--database", required=True, help="database the plugin runs for (required)"
    )
    parser.add_argument(
        "--input-arguments", default=None, help="trigger arguments, k=v,k2=v2 (no commas in v)"
    )
    parser.add_argument(
        "--cache-name",
        default=None,
        help=(
            "name of the test cache (influxdb3 keeps it between test runs on the server; here "
            "nothing outlives the command, so every run starts with an empty cache)"
        ),
    )
    parser.add_argument(
        "--plugin-dir",
        type=Path,
        default=None,
        help="look FILENAME up here when it is not found as given (the server's --plugin-dir)",
    )
    parser.add_argument(
        "filename",
        metavar="FILENAME",
        help="the plugin: a .py file or a directory with __init__.py",
    )


def _plugin_for_test(options: argparse.Namespace) -> Path | None:
    path = Path(options.filename)
    if not path.exists() and options.plugin_dir is not None:
        path = options.plugin_dir / options.filename
    if not path.exists():
        print(f"error: plugin {options.filename} not found", file=sys.stderr)
        return None
    return path


def _test_wal_plugin(options: argparse.Namespace) -> int:
    from madcheck.engine.wal_test import run_wal_plugin

    path = _plugin_for_test(options)
    if path is None:
        return 2
    if options.lp is None and options.file is None:
        print("error: either --lp or --file must be provided", file=sys.stderr)
        return 2
    try:
        arguments = parse_trigger_arguments(options.input_arguments)
        text = options.lp if options.lp is not None else options.file.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_wal_plugin(path, text, arguments, options.database)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


def _test_schedule_plugin(options: argparse.Namespace) -> int:
    from madcheck.engine.wal_test import run_schedule_plugin

    path = _plugin_for_test(options)
    if path is None:
        return 2
    try:
        arguments = parse_trigger_arguments(options.input_arguments)
        trigger_time = next_cron_time(options.schedule or DEFAULT_TEST_SCHEDULE, datetime.now(UTC))
        text = options.lp
        if text is None and options.file is not None:
            text = options.file.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run_schedule_plugin(path, trigger_time, arguments, options.database, text)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0
