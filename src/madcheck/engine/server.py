"""The HTTP API of ``madcheck serve``, answered as InfluxDB 3 Core answers it.

The standard library's ``ThreadingHTTPServer`` is enough here: one thread per request keeps a slow
request plugin from holding up writers, requests are small, and it adds no dependency. Responses
close the connection, so shutting down never waits on an idle keep-alive client.

Hostile clients are bounded here (see ``_Connections`` and ``_check_origin``): a request must
arrive complete within ``idle_timeout_s`` of its connection opening, at most ``max_connections``
are served at once (when full, the oldest one still sending its request makes room), and requests
a web page could send (a foreign ``Host`` from DNS rebinding, a foreign ``Origin``) are refused,
so that ``--without-auth`` does not open the API to every page the user's browser visits.

Shutdown order matters: first writes are refused (503), then pending writes are flushed to the
triggers while the server still answers ``/api/v3/engine/...`` (a data-writes plugin may be posting
an alert to a request trigger at that moment), then the listener stops and storage is closed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from madcheck.engine.auth import TokenStore, bearer_token
from madcheck.engine.formats import FORMATS, render
from madcheck.engine.plugin_files import PluginPathError, save_plugin_file
from madcheck.engine.processing import EngineError, ProcessingEngine, RequestCall
from madcheck.engine.storage import (
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_QUERY_TIMEOUT_S,
    ERROR_BEHAVIORS,
    InvalidRequestError,
    QueryError,
    Storage,
    TriggerDefinition,
    WriteResult,
)

logger = logging.getLogger("madcheck.engine")

DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: A connection that has not sent its whole request this long after opening is closed.
DEFAULT_IDLE_TIMEOUT_S = 10.0
#: Connections served at once (one thread each).
DEFAULT_MAX_CONNECTIONS = 100
VERSION = "3.0.0-madcheck"

_V3_PRECISIONS = {
    "auto": "auto",
    "ns": "ns",
    "nanosecond": "ns",
    "us": "us",
    "microsecond": "us",
    "ms": "ms",
    "millisecond": "ms",
    "s": "s",
    "second": "s",
}
_V1_PRECISIONS = {
    "n": "ns",
    "ns": "ns",
    "u": "us",
    "us": "us",
    "ms": "ms",
    "s": "s",
    "m": "m",
    "h": "h",
}
_TRIGGER_PATH = "/api/v3/configure/processing_engine_trigger"
_ENGINE_PREFIX = "/api/v3/engine/"
_PLUGIN_FILES_PATH = "/api/v3/plugins/files"
#: A request trigger's path: URL-safe segments, none of them ``.`` or ``..``.
_ENGINE_PATH = re.compile(r"[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)*")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class HTTPError(Exception):
    """An error answered as InfluxDB does: a status and ``{"error": ..., "data": ...}``."""

    def __init__(self, status: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.data = data


@dataclass
class ServerConfig:
    data_dir: Path
    plugin_dir: Path
    host: str = "127.0.0.1"
    port: int = 8181
    without_auth: bool = False
    wal_flush_interval_s: float = 1.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    node_id: str = "node0"
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    max_query_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Host names besides loopback names and the bind address that requests may be sent to.
    allowed_hosts: tuple[str, ...] = ()


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"))


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise HTTPError(400, f"invalid boolean {value!r}: expected true or false")


class EngineServer:
    """Storage, processing engine and HTTP listener, started and stopped together."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Bind first: a taken port then fails before any database file is opened.
        self._httpd = _GuardedHTTPServer(
            (config.host, config.port),
            _make_handler(self),
            _Connections(config.max_connections, config.idle_timeout_s),
        )
        self._thread: threading.Thread | None = None
        self._accepting_writes = True
        self._writes_in_flight = 0
        self._writes_done = threading.Condition()
        try:
            config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.storage = Storage(
                config.data_dir,
                query_timeout_s=config.query_timeout_s,
                max_result_bytes=config.max_query_result_bytes,
            )
            self.tokens = TokenStore(config.data_dir / "tokens.json")
            self.engine = ProcessingEngine(self.storage, config.plugin_dir)
            self.engine.load_saved_triggers()
        except BaseException:
            self._httpd.server_close()
            raise

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self.engine.start_flushing(self.config.wal_flush_interval_s)
        self._httpd.connections.start_reaper()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="http", kwargs={"poll_interval": 0.1}
        )
        self._thread.start()

    def stop(self) -> None:
        """Refuse writes, flush pending writes to the triggers, stop listening, close storage."""
        with self._writes_done:
            self._accepting_writes = False
            self._writes_done.wait_for(lambda: self._writes_in_flight == 0)
        self.engine.close()
        self._httpd.shutdown()
        self._httpd.connections.stop_reaper()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self.storage.close()

    # -- routes --------------------------------------------------------------------------------
    def dispatch(
        self, method: str, target: str, headers: dict[str, str], read_body: Callable[[], bytes]
    ) -> Response:
        parts = urlsplit(target)
        path = parts.path
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if path in ("/health", "/ping"):
            return self._health(method, path)
        self._check_origin(headers)
        if path == "/api/v3/configure/token/admin" and method == "POST":
            return self._create_admin_token()
        self._authorize(headers)
        if path == "/api/v3/write_lp":
            self._require(method, "POST")
            return self._write(
                query.get("db"),
                read_body(),
                _V3_PRECISIONS,
                query.get("precision", "auto"),
                accept_partial=_flag(query.get("accept_partial"), True),
                no_sync=_flag(query.get("no_sync"), False),
            )
        if path == "/api/v2/write":
            self._require(method, "POST")
            return self._write(
                query.get("bucket"),
                read_body(),
                _V3_PRECISIONS | _V1_PRECISIONS,
                query.get("precision", "ns"),
                accept_partial=False,
            )
        if path == "/write":
            self._require(method, "POST")
            return self._write(
                query.get("db"),
                read_body(),
                _V1_PRECISIONS,
                query.get("precision", "ns"),
                accept_partial=False,
            )
        if path == "/api/v3/query_sql":
            return self._query(method, query, read_body)
        if path.startswith(_ENGINE_PREFIX):
            self._require(method, "GET", "POST")
            engine_path = path[len(_ENGINE_PREFIX) :].strip("/")
            if not _valid_engine_path(engine_path):
                raise HTTPError(400, f"invalid engine path {engine_path!r}")
            return self._engine_request(engine_path, query, headers, read_body())
        if path == _TRIGGER_PATH:
            self._require(method, "POST", "DELETE")
            if method == "POST":
                return self._create_trigger(read_body())
            return self._delete_trigger(query, read_body())
        if path == _PLUGIN_FILES_PATH:
            self._require(method, "POST")
            return self._upload_plugin_file(read_body())
        if path in (_TRIGGER_PATH + "/enable", _TRIGGER_PATH + "/disable"):
            self._require(method, "POST")
            return self._set_disabled(query, read_body(), disabled=path.endswith("/disable"))
        raise HTTPError(404, f"no route for {path}")

    @staticmethod
    def _require(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError(405, f"method {method} not allowed here; use {' or '.join(allowed)}")

    def _check_origin(self, headers: dict[str, str]) -> None:
        """Refuse what a web page could send: DNS rebinding shows as a foreign ``Host``, a
        cross-site form or fetch as a foreign ``Origin`` (or ``Sec-Fetch-Site: cross-site``)."""
        host = headers.get("host")
        if host is not None and not _host_allowed(host, self.config):
            raise HTTPError(
                403,
                f"requests to host {host!r} are refused: use 127.0.0.1, localhost or the address "
                "the server listens on (or name the host with madcheck serve --allowed-hosts)",
            )
        origin = headers.get("origin")
        if origin is not None and (host is None or not _same_origin(origin, host)):
            raise HTTPError(403, "cross-origin requests are refused")
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            raise HTTPError(403, "cross-site requests are refused")

    def _authorize(self, headers: dict[str, str]) -> None:
        if self.config.without_auth:
            return
        if not self.tokens.is_valid(bearer_token(headers.get("authorization"))):
            raise HTTPError(
                401,
                "missing or invalid token: send 'Authorization: Bearer <token>' "
                "(create one with: madcheck create token --admin)",
            )

    def _health(self, method: str, path: str) -> Response:
        self._require(method, "GET", "HEAD")
        if path == "/health":
            return Response(200, b"OK", "text/plain; charset=utf-8")
        return json_response(200, {"version": VERSION, "revision": "madcheck"})

    def _create_admin_token(self) -> Response:
        token = self.tokens.create_first_admin_token()
        if token is None:
            raise HTTPError(
                409,
                "an admin token already exists; to start over, stop the server and delete "
                "tokens.json in the data directory",
            )
        return json_response(201, {"id": 0, "name": "_admin", "token": token})

    def _write(
        self,
        database: str | None,
        body: bytes,
        precisions: dict[str, str],
        precision: str,
        *,
        accept_partial: bool,
        no_sync: bool = False,
    ) -> Response:
        with self._writes_done:
            if not self._accepting_writes:
                raise HTTPError(503, "the server is shutting down")
            self._writes_in_flight += 1
        try:
            result = self._store(database, body, precisions, precision, accept_partial, no_sync)
        finally:
            with self._writes_done:
                self._writes_in_flight -= 1
                self._writes_done.notify_all()
        if not result.errors:
            return Response(204)
        data = [
            {
                "error_message": error.error_message,
                "line_number": error.line_number,
                "original_line": error.original_line,
            }
            for error in result.errors
        ]
        if accept_partial and result.rows:
            raise HTTPError(400, "partial write of line protocol occurred", data)
        raise HTTPError(400, "parsing failed for write_lp endpoint", data)

    def _store(
        self,
        database: str | None,
        body: bytes,
        precisions: dict[str, str],
        precision: str,
        accept_partial: bool,
        no_sync: bool,
    ) -> WriteResult:
        """Store the lines, then hand the stored rows to the engine (``_write`` counts this as a
        write in flight, so shutdown's last flush always comes after it)."""
        if not database:
            raise HTTPError(400, "missing database: pass ?db=NAME (?bucket=NAME for /api/v2)")
        unit = precisions.get(precision)
        if unit is None:
            raise HTTPError(400, f"invalid precision {precision!r}: use {', '.join(precisions)}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, "line protocol must be UTF-8") from exc
        try:
            result = self.storage.write_lp(
                database, text, precision=unit, accept_partial=accept_partial, no_sync=no_sync
            )
        except InvalidRequestError as exc:
            raise HTTPError(400, str(exc)) from exc
        self.engine.record_writes(database, result.rows)
        return result

    def _query(
        self, method: str, query: dict[str, str], read_body: Callable[[], bytes]
    ) -> Response:
        self._require(method, "GET", "POST")
        options: dict[str, Any] = dict(query)
        if method == "POST":
            body = read_body()
            if body.strip():
                options.update(_json_object(body))
        elif isinstance(options.get("params"), str):
            options["params"] = _json_object(options["params"].encode("utf-8"), what="params")
        database, sql = options.get("db"), options.get("q")
        fmt = options.get("format") or "json"
        if not isinstance(database, str) or not database:
            raise HTTPError(400, "missing db: the database to query")
        if not isinstance(sql, str) or not sql.strip():
            raise HTTPError(400, "missing q: the SQL query")
        if fmt not in FORMATS:
            raise HTTPError(400, f"invalid format {fmt!r}: use {', '.join(FORMATS)}")
        params = options.get("params")
        if params is not None and not isinstance(params, dict):
            raise HTTPError(400, "params must be a JSON object of name -> value")
        try:
            rows = self.storage.query(database, sql, _param_strings(params))
        except QueryError as exc:
            raise HTTPError(400, str(exc)) from exc
        return Response(200, render(rows, fmt).encode("utf-8"), FORMATS[fmt])

    def _engine_request(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        plugin_headers = {k: v for k, v in headers.items() if k != "authorization"}
        try:
            served, result = self.engine.handle_request(
                path, RequestCall(query, plugin_headers, body)
            )
        except EngineError as exc:
            raise HTTPError(exc.status, str(exc)) from exc
        if not served:
            raise HTTPError(404, f"no enabled request trigger serves {path!r}")
        return plugin_response(result)

    def _create_trigger(self, body: bytes) -> Response:
        request = _json_object(body)
        arguments = request.get("trigger_arguments") or {}
        if not isinstance(arguments, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in arguments.items()
        ):
            raise HTTPError(400, "trigger_arguments must be an object of string -> string")
        fields = ("db", "trigger_name", "plugin_filename", "trigger_specification")
        values = [request.get(name) for name in fields]
        missing = [
            n for n, v in zip(fields, values, strict=True) if not isinstance(v, str) or not v
        ]
        if missing:
            raise HTTPError(400, f"missing or empty: {', '.join(missing)}")
        _check_trigger_fields(dict(zip(fields, (str(v) for v in values), strict=True)), arguments)
        disabled = request.get("disabled", False)
        if not isinstance(disabled, bool):
            raise HTTPError(400, "disabled must be true or false")
        run_async, error_behavior = _trigger_settings(request.get("trigger_settings"))
        definition = TriggerDefinition(
            database=str(values[0]),
            name=str(values[1]),
            plugin_filename=str(values[2]),
            trigger_specification=str(values[3]),
            trigger_arguments=dict(arguments),
            disabled=disabled,
            run_async=run_async,
            error_behavior=error_behavior,
        )
        self._engine_call(lambda: self.engine.create_trigger(definition))
        return Response(200)

    def _upload_plugin_file(self, body: bytes) -> Response:
        """``create trigger --upload``: one file into the plugin dir (every token here is admin)."""
        request = _json_object(body)
        name, content = request.get("plugin_name"), request.get("content")
        if not isinstance(name, str) or not isinstance(content, str):
            raise HTTPError(400, "plugin_name and content must be strings")
        try:
            save_plugin_file(self.config.plugin_dir, name, content)
        except PluginPathError as exc:
            raise HTTPError(400, str(exc)) from None
        except UnicodeEncodeError:
            raise HTTPError(400, f"content of {name!r} is not valid text") from None
        except OSError as exc:
            raise HTTPError(500, f"cannot write plugin file {name!r}: {exc.strerror}") from None
        logger.info("plugin file %r written to the plugin dir", name)
        return Response(200)

    def _trigger_identity(self, query: dict[str, str], body: bytes) -> tuple[str, str]:
        identity: dict[str, Any] = dict(query)
        if body.strip():
            identity.update(_json_object(body))
        database, name = identity.get("db"), identity.get("trigger_name")
        if not isinstance(database, str) or not isinstance(name, str) or not database or not name:
            raise HTTPError(400, "db and trigger_name are required")
        return database, name

    def _delete_trigger(self, query: dict[str, str], body: bytes) -> Response:
        database, name = self._trigger_identity(query, body)
        self._engine_call(lambda: self.engine.delete_trigger(database, name))
        return Response(200)

    def _set_disabled(self, query: dict[str, str], body: bytes, *, disabled: bool) -> Response:
        database, name = self._trigger_identity(query, body)
        self._engine_call(lambda: self.engine.set_disabled(database, name, disabled))
        return Response(200)

    @staticmethod
    def _engine_call(action: Callable[[], None]) -> None:
        try:
            action()
        except EngineError as exc:
            raise HTTPError(exc.status, str(exc)) from exc


def _valid_engine_path(path: str) -> bool:
    return _ENGINE_PATH.fullmatch(path) is not None and not any(
        segment in (".", "..") for segment in path.split("/")
    )


def _check_trigger_fields(fields: dict[str, str], arguments: dict[str, str]) -> None:
    """Refuse names no file, thread or URL can carry (control characters, NUL), a plugin name
    that is not a file below the plugin dir, and a request path that is not a plain URL path."""
    for name, value in [*fields.items(), *((f"trigger argument {k!r}", k) for k in arguments)]:
        if _CONTROL_CHARACTERS.search(value):
            raise HTTPError(400, f"{name} contains a control character (such as NUL)")
    if any(_CONTROL_CHARACTERS.search(value) for value in arguments.values()):
        raise HTTPError(
            400, "a trigger argument's value contains a control character (such as NUL)"
        )
    plugin = fields["plugin_filename"].replace("\\", "/").rstrip("/")
    if plugin in ("", ".") or any(part == ".." for part in plugin.split("/")):
        raise HTTPError(
            400,
            f"plugin_filename {fields['plugin_filename']!r} must name a file or folder "
            "inside the plugin dir",
        )
    kind, _, path = fields["trigger_specification"].strip().partition(":")
    if kind == "request" and path.strip("/") and not _valid_engine_path(path.strip("/")):
        raise HTTPError(
            400,
            f"invalid request path {path!r}: use letters, digits and '_', '-', '.', '~' in "
            "'/'-separated parts, none of them '.' or '..'",
        )


def _hostname(authority: str) -> str | None:
    """The host of a ``Host`` header or URL authority, lower-cased, without port or brackets."""
    try:
        hostname = urlsplit("//" + authority.strip()).hostname
    except ValueError:
        return None
    return hostname.rstrip(".") if hostname else None


def _host_allowed(host_header: str, config: ServerConfig) -> bool:
    """Loopback names and addresses, the bind address (any address when bound to all) and
    ``allowed_hosts``: a DNS-rebinding page's requests carry its own host name instead."""
    host = _hostname(host_header)
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if host in (name.lower() for name in config.allowed_hosts):
        return True
    bind = config.host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == bind
    if address.is_loopback:
        return True
    try:
        bound = ipaddress.ip_address(bind)
    except ValueError:
        return False
    return bound.is_unspecified or bound == address


def _same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.strip().lower()


def _trigger_settings(settings: Any) -> tuple[bool, str]:
    """``trigger_settings`` of a create-trigger request: ``(run_async, error_behavior)``.

    Required, as InfluxDB 3 requires it (``{"run_async": false, "error_behavior": "log"}`` is
    what its CLI sends by default); ``error_behavior`` is ``log``, ``retry`` or ``disable``.
    """
    if not isinstance(settings, dict):
        raise HTTPError(
            400,
            "trigger_settings is required: an object with run_async (true|false) and "
            "error_behavior (log|retry|disable)",
        )
    run_async, error_behavior = settings.get("run_async"), settings.get("error_behavior")
    if not isinstance(run_async, bool):
        raise HTTPError(400, "trigger_settings.run_async must be true or false")
    if error_behavior not in ERROR_BEHAVIORS:
        raise HTTPError(
            400, f"trigger_settings.error_behavior must be one of {', '.join(ERROR_BEHAVIORS)}"
        )
    return run_async, str(error_behavior)


def _json_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise HTTPError(400, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise HTTPError(400, f"{what} must be a JSON object")
    return value


def _param_strings(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as strings, the only type ``$name`` parameters take here."""
    if params is None:
        return None
    converted: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, dict | list) or value is None:
            raise HTTPError(400, f"parameter {name!r} must be a string or a number")
        converted[name] = json.dumps(value) if isinstance(value, bool) else str(value)
    return converted


def plugin_response(result: Any) -> Response:
    """Turn what ``process_request`` returned into a response, as the engine does."""
    status, headers = 200, None
    if isinstance(result, tuple):
        if len(result) not in (2, 3) or not isinstance(result[1], int):
            raise HTTPError(500, "process_request returned a tuple not shaped (body, status[, h])")
        body, status = result[0], result[1]
        if len(result) == 3:
            headers = {str(k): str(v) for k, v in dict(result[2]).items()}
        result = body
    if result is None:
        response = Response(status, b"", "text/plain; charset=utf-8")
    elif isinstance(result, dict | list):
        response = Response(status, json.dumps(result).encode("utf-8"))
    elif isinstance(result, bytes):
        response = Response(status, result, "application/octet-stream")
    else:
        response = Response(status, str(result).encode("utf-8"), "text/plain; charset=utf-8")
    response.headers = headers
    return response


class _ClientGone(Exception):
    """The client stopped sending (or was cut off for being too slow): nothing to answer."""


class _Connections:
    """The open connections, the cap on them and the deadline for each one's request.

    A connection is *reading* while its request (line, headers, body) is still arriving; each
    must be complete within ``idle_timeout_s`` of the connection opening. A reaper thread cuts
    off readers past that deadline (a per-``recv`` timeout alone would let a client that sends
    one byte now and then hold its thread forever). When ``limit`` connections are open, a new
    one makes room by cutting off the oldest reader; if none is reading, it is answered 503.
    """

    def __init__(self, limit: int, idle_timeout_s: float) -> None:
        self.limit = limit
        self.idle_timeout_s = idle_timeout_s
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._reading: dict[socket.socket, float] = {}
        self._deadlines: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def admit(self, sock: socket.socket) -> bool:
        with self._lock:
            if len(self._open) >= self.limit:
                if not self._reading:
                    return False
                oldest = min(self._reading, key=self._reading.__getitem__)
                self._cut_off(oldest)
            deadline = time.monotonic() + self.idle_timeout_s
            self._open.add(sock)
            self._deadlines[sock] = deadline
            self._reading[sock] = deadline
            return True

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
            self._reading.pop(sock, None)
            self._deadlines.pop(sock, None)

    def reading(self, sock: socket.socket, active: bool) -> None:
        """Mark whether ``sock``'s request is still arriving (its deadline then applies)."""
        with self._lock:
            if sock not in self._open:
                return
            if active:
                self._reading[sock] = self._deadlines[sock]
            else:
                self._reading.pop(sock, None)

    def _cut_off(self, sock: socket.socket) -> None:
        """Stop ``sock`` (lock held); its thread sees end of input and finishes."""
        self._reading.pop(sock, None)
        self._open.discard(sock)
        self._deadlines.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def start_reaper(self) -> None:
        self._reaper = threading.Thread(target=self._reap, name="http-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join()

    def _reap(self) -> None:
        interval = min(1.0, max(0.01, self.idle_timeout_s / 4))
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                for sock in [s for s, deadline in self._reading.items() if deadline < now]:
                    self._cut_off(sock)


class _GuardedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections ``_Connections`` admits, bounds and reaps."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        connections: _Connections,
    ) -> None:
        self.connections = connections
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.connections.admit(request):
            super().process_request(request, client_address)
            return
        try:
            request.settimeout(1.0)
            body = b'{"error": "too many connections: try again shortly"}'
            request.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nRetry-After: 1\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-request is routine for a server; keep it out of stderr.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


def _make_handler(server: EngineServer) -> type[BaseHTTPRequestHandler]:
    max_bytes = server.config.max_request_bytes

    class Handler(BaseHTTPRequestHandler):
        server_version = "madcheck"
        # HTTP/1.1 so that clients sending "Expect: 100-continue" (curl, for bodies over 1 KiB)
        # get their "100 Continue" at once; every response still closes the connection.
        protocol_version = "HTTP/1.1"
        # Each recv and send; a slow-reading client cannot hold a thread either.
        timeout = server.config.idle_timeout_s

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s %s", self.address_string(), format % args)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                raise HTTPError(411, "send the body with a Content-Length header")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError as exc:
                raise HTTPError(400, "invalid Content-Length") from exc
            if length > max_bytes:
                raise HTTPError(413, f"request body larger than the {max_bytes} byte limit")
            connections: _Connections = self.server.connections  # type: ignore[attr-defined]
            connections.reading(self.connection, True)
            try:
                body = self.rfile.read(length) if length > 0 else b""
            except OSError as exc:
                raise _ClientGone from exc
            finally:
                connections.reading(self.connection, False)
            if len(body) < length:
                raise _ClientGone
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = _gunzip(body, max_bytes)
            return body

        def _handle(self) -> None:
            self.server.connections.reading(self.connection, False)  # type: ignore[attr-defined]
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                response = server.dispatch(self.command, self.path, headers, self._read_body)
            except _ClientGone:
                self.close_connection = True
                return
            except HTTPError as exc:
                payload: dict[str, Any] = {"error": str(exc)}
                if exc.data is not None:
                    payload["data"] = exc.data
                response = json_response(exc.status, payload)
                if exc.status == 413:
                    self.close_connection = True
            except Exception:
                logger.exception("internal error answering %s %s", self.command, self.path)
                response = json_response(500, {"error": "internal server error"})
            try:
                self._send(response)
            except OSError:
                self.close_connection = True  # the client is gone or stopped reading

        def _send(self, response: Response) -> None:
            status = HTTPStatus(response.status) if response.status in _KNOWN else response.status
            self.send_response(status)
            self.send_header("Connection", "close")
            self.close_connection = True
            if response.status != 204:
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
            for key, value in (response.headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if response.status != 204 and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_DELETE = do_PUT = do_HEAD = _handle

    return Handler


_KNOWN = {status.value for status in HTTPStatus}


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=31)
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise HTTPError(400, "invalid gzip body") from exc
    if len(data) > max_bytes:
        raise HTTPError(413, f"request body larger than the {max_bytes} byte limit")
    return data
