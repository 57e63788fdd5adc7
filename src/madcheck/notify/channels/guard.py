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
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from madcheck.notify.allowlist import HostAllowList, UnsafeURL

FORBIDDEN_ADDRESS = "connects to a forbidden address (link-local or cloud metadata)"


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

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.refusal = None
        try:
            self.destinations.check(request.url)
        except UnsafeURL as problem:
            self.refusal = str(problem)
            raise requests.exceptions.InvalidURL("refused destination") from None
        return super().send(request, *args, **kwargs)


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
