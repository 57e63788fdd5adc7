"""Which hosts the notifier may post webhooks to.

The notifier posts to whatever URL its caller names, so anyone who can reach the endpoint could
make the server send requests into its own network (server-side request forgery). An allow-list
of webhook hosts, given as a trigger argument, closes that door. Without one every host is
allowed, as in the seed's notifier.

Entries are separated by ``;`` or whitespace, because trigger argument values cannot contain
commas and host names contain dots. Forms: ``hooks.slack.com`` (that host, any port),
``*.example.com`` (any subdomain of example.com, not example.com itself), ``127.0.0.1:8080``
(that host on that port only), ``[::1]:8080`` for IPv6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_SEPARATORS = re.compile(r"[;\s]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: a host (or ``*.`` suffix) and an optional port."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host


@dataclass(frozen=True)
class HostAllowList:
    """``rules`` of ``None`` means every host is allowed (no allow-list configured)."""

    rules: tuple[HostRule, ...] | None = None

    @classmethod
    def parse(cls, text: str | None) -> HostAllowList:
        """Read the ``allowed_webhook_hosts`` trigger argument; ``None`` allows every host."""
        if text is None:
            return cls(None)
        entries = [entry for entry in _SEPARATORS.split(text.strip()) if entry]
        if not entries:
            raise ValueError(
                "allowed_webhook_hosts is empty: name at least one host "
                "(separated by ';' or spaces), or leave the argument out to allow any host"
            )
        return cls(tuple(_parse_rule(entry) for entry in entries))

    def allows(self, url: str) -> bool:
        """Is ``url`` an http(s) URL whose host (and port) the list names?"""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in _DEFAULT_PORTS or not host:
            return False
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:  # a port outside 0-65535
            return False
        if self.rules is None:
            return True
        return any(rule.matches(host, port) for rule in self.rules)


def _parse_rule(entry: str) -> HostRule:
    try:
        parts = urlsplit(f"//{entry}")
        port = parts.port
    except ValueError:
        raise ValueError(f"allowed_webhook_hosts entry {entry!r} has a bad port") from None
    host = (parts.hostname or "").lower()
    wildcard_body = host[2:] if host.startswith("*.") else host
    if not wildcard_body or "*" in wildcard_body or parts.path or parts.username is not None:
        raise ValueError(
            f"allowed_webhook_hosts entry {entry!r} is not host, *.domain or host:port"
        )
    return HostRule(host, port)
