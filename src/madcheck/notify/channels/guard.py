"""A requests transport that refuses connections to forbidden addresses, and quiet urllib3 logs.

Checking a host name before sending is not enough: the name is resolved again when connecting,
and its owner can make the second answer a forbidden address (DNS rebinding). So every
connection a sender's session opens is checked after the TCP connect and before a byte is sent:
the peer address of the socket must pass ``HostAllowList.address_allowed``. Every URL the
session is asked to send to (a redirect included, should any caller follow one) is checked again
against the allow-list as well.

urllib3 logs each request's path at DEBUG level, and Slack's, Discord's and Twilio's secrets
live in paths; ``hide_paths_in_urllib3_logs`` rewrites those records before any handler sees
them.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from madcheck.notify.allowlist import HostAllowList, UnsafeURL

FORBIDDEN_ADDRESS = "connects to a forbidden address (link-local or cloud metadata)"
MAX_ANSWER_BYTES = 64 * 1024
_CHUNK = 8192
_DEFAULT_READ_BUDGET_S = 10.0


class GuardedAdapter(HTTPAdapter):
    """An adapter whose connections only reach addresses ``destinations`` allows.

    ``refusal`` holds why the last send was refused, so the sender can report it as final
    instead of as a retryable connection failure.
    """

    def __init__(self, destinations: HostAllowList) -> None:
        self.destinations = destinations
        self.refusal: str | None = None
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        attributes = {"adapter": self}
        http = type("GuardedHTTPConnection", (_PeerCheck, HTTPConnection), attributes)
        https = type("GuardedHTTPSConnection", (_PeerCheck, HTTPSConnection), attributes)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        self.refusal = None
        try:
            self.destinations.check(request.url)
        except UnsafeURL as problem:
            self.refusal = str(problem)
            raise requests.exceptions.InvalidURL("refused destination") from None
        response = super().send(request, stream=True, **kwargs)
        if not stream:
            _read_bounded(response, _read_budget(kwargs.get("timeout")))
        return response


def _read_budget(timeout: object) -> float:
    """Seconds the whole answer may take: the read timeout (or the single timeout given)."""
    if isinstance(timeout, tuple):
        timeout = timeout[-1]
    return float(timeout) if isinstance(timeout, int | float) else _DEFAULT_READ_BUDGET_S


def _read_bounded(response: requests.Response, budget_s: float) -> None:
    """Read the answer into ``response`` as requests would, but at most ``MAX_ANSWER_BYTES``
    and for at most ``budget_s`` seconds; a longer answer is cut, a slower one is a timeout."""
    deadline = time.monotonic() + budget_s
    chunks: list[bytes] = []
    size = 0
    complete = False
    # read1 (urllib3 2) returns what has arrived; read waits for a full chunk, which a dripping
    # server could make last for as many timeouts as the chunk has bytes.
    read = getattr(response.raw, "read1", None) or response.raw.read
    try:
        while size <= MAX_ANSWER_BYTES:
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout("the answer took too long")
            chunk = read(_CHUNK, decode_content=True)
            if not chunk:
                complete = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except requests.exceptions.ReadTimeout:
        response.close()
        raise
    except Exception as error:  # urllib3's own read errors, as requests would report them
        response.close()
        raise requests.exceptions.ConnectionError("reading the answer failed") from error
    response._content = b"".join(chunks)[:MAX_ANSWER_BYTES]
    response._content_consumed = True  # type: ignore[attr-defined]
    if complete:
        response.raw.release_conn()
    else:
        response.close()  # the rest is never read: drop the connection


class _PeerCheck:
    """Mixed into urllib3's connection classes: check the socket's peer before it is used."""

    adapter: GuardedAdapter

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        try:
            peer = sock.getpeername()[0]
        except OSError:
            peer = ""
        if not self.adapter.destinations.address_allowed(str(peer)):
            sock.close()
            self.adapter.refusal = FORBIDDEN_ADDRESS
            raise NewConnectionError(self, "refused: forbidden address")  # type: ignore[arg-type]
        return sock


def guard(session: requests.Session, destinations: HostAllowList) -> GuardedAdapter:
    """Make every http(s) connection of ``session``, and every URL it sends to, pass
    ``destinations``."""
    adapter = GuardedAdapter(destinations)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return adapter


class _HidePaths(logging.Filter):
    """Replace every path argument of a record (``/services/T/B/secret``) by ``/...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_hidden(arg) for arg in record.args)
        return True


def _hidden(value: object) -> object:
    if not isinstance(value, str):
        return value
    if value.startswith("/"):
        return "/..."
    scheme, separator, rest = value.partition("://")
    if separator:
        return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/..."
    return value


_FILTER = _HidePaths()


def hide_paths_in_urllib3_logs() -> None:
    """Install the path filter on urllib3's loggers (idempotent)."""
    for name in ("urllib3", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
