"""Where the notifier may send: webhook URLs read exactly as the HTTP client reads them.

The notifier posts to whatever URL its caller names, so anyone who can reach the endpoint could
make the server send requests into its own network (server-side request forgery). Two defences
live here:

- ``parse_destination`` reads a URL with urllib3's ``parse_url``, the parser requests itself
  uses, and refuses any URL that Python's ``urlsplit`` reads differently, or that holds what
  makes parsers disagree (a backslash, white space, control characters, non-ASCII text, a
  ``user@`` part, a ``%`` in the host, a numeric host not in dotted-quad form). The host that is
  checked is therefore the host that is connected to.
- ``HostAllowList`` names the hosts webhooks may go to (the ``allowed_webhook_hosts`` trigger
  argument) and the networks no webhook may reach: link-local and cloud-metadata addresses by
  default, unless the allow-list names that address itself. The address check is applied to the
  address actually connected to (``notify/channels/guard.py``), so a host name that resolves to
  a forbidden address (DNS rebinding) is refused too.

Allow-list entries are separated by ``;`` or white space, because trigger argument values cannot
contain commas. Forms: ``hooks.slack.com`` (that host, any port), ``*.example.com`` (any
subdomain of example.com, not example.com itself), ``127.0.0.1:8080`` (that host on that port
only), ``[::1]:8080`` for IPv6. Without an allow-list every host is allowed, as in the seed's
notifier, except the forbidden networks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SEPARATORS = re.compile(r"[;\s]+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: What makes URL parsers disagree: control characters, white space, backslashes, DEL.
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
#: A last label of digits or hex: an address in a form (``127.1``, ``0x7f.1``, ``2130706433``)
#: that the resolver accepts but no allow-list entry is written in.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")

#: Link-local (where cloud metadata services live: 169.254.169.254) and AWS's IPv6 metadata.
DEFAULT_FORBIDDEN_NETWORKS = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")


class UnsafeURL(ValueError):
    """A URL the notifier will not send to; the message never repeats the URL (a secret)."""


@dataclass(frozen=True)
class Destination:
    """Where a URL leads: the scheme, the host (lower case, no brackets, no final dot), the port."""

    scheme: str
    host: str
    port: int

    @property
    def address(self) -> IPAddress | None:
        """The host as an IP address, when it is one."""
        return _as_address(self.host)


def parse_destination(url: object) -> Destination:
    """Read ``url`` as the HTTP client will, or raise ``UnsafeURL`` saying why not."""
    if not isinstance(url, str):
        raise UnsafeURL("is not a string")
    if not url.isascii() or _AMBIGUOUS.search(url):
        raise UnsafeURL(
            "holds white space, a control character, a backslash or non-ASCII text "
            "(write a host name in its xn-- form and percent-encode the rest)"
        )
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeURL("is not an http(s) URL")
    try:
        client = parse_url(url)
        split = urlsplit(url)
        split_port = split.port
    except (LocationParseError, ValueError):
        raise UnsafeURL("is not a valid URL (bad host or port)") from None
    if (client.scheme or "").lower() != scheme or split.scheme.lower() != scheme:
        raise UnsafeURL("is read differently by different URL parsers")
    if client.auth is not None or "@" in split.netloc:
        raise UnsafeURL("holds a user name or password (user@host); webhook URLs have none")
    host = _bare_host(client.host or "")
    if not host or "%" in host or "" in host.split("."):
        raise UnsafeURL("has no host, or a host with '%' or an empty label ('..') in it")
    if host != _bare_host(split.hostname or ""):
        raise UnsafeURL("is read differently by different URL parsers")
    port = client.port or _DEFAULT_PORTS[scheme]
    if port != (split_port or _DEFAULT_PORTS[scheme]):
        raise UnsafeURL("is read differently by different URL parsers")
    if _as_address(host) is None and _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        raise UnsafeURL("has a numeric host that is not an IPv4 address in dotted-quad form")
    return Destination(scheme, host, port)


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: a host, ``*.`` suffix or IP address, and an optional port."""

    host: str
    port: int | None = None

    @property
    def address(self) -> IPAddress | None:
        return _as_address(self.host)

    def matches(self, destination: Destination) -> bool:
        if self.port is not None and self.port != destination.port:
            return False
        if self.host.startswith("*."):  # names only: *.0.1 is no way to list addresses
            return destination.address is None and destination.host.endswith(self.host[1:])
        address = self.address
        if address is not None:
            return address == destination.address
        return destination.host == self.host


@dataclass(frozen=True)
class HostAllowList:
    """``rules`` of ``None`` means every host is allowed (no allow-list configured)."""

    rules: tuple[HostRule, ...] | None = None
    forbidden: tuple[IPNetwork, ...] = field(
        default_factory=lambda: networks(DEFAULT_FORBIDDEN_NETWORKS)
    )

    @classmethod
    def parse(
        cls, text: str | None, forbidden: Iterable[str] = DEFAULT_FORBIDDEN_NETWORKS
    ) -> HostAllowList:
        """Read the ``allowed_webhook_hosts`` trigger argument; ``None`` allows every host."""
        blocked = networks(forbidden)
        if text is None:
            return cls(None, blocked)
        entries = [entry for entry in _SEPARATORS.split(text.strip()) if entry]
        if not entries:
            raise ValueError(
                "allowed_webhook_hosts is empty: name at least one host "
                "(separated by ';' or spaces), or leave the argument out to allow any host"
            )
        return cls(tuple(_parse_rule(entry) for entry in entries), blocked)

    def check(self, url: object) -> Destination:
        """The destination of ``url``, or ``UnsafeURL`` when it may not be sent to.

        An IP address in the URL is checked here; a host name is checked again, once resolved,
        when the connection is made.
        """
        destination = parse_destination(url)
        if self.rules is not None and not any(rule.matches(destination) for rule in self.rules):
            raise UnsafeURL("names a host that is not in allowed_webhook_hosts")
        address = destination.address
        if address is not None and not self.address_allowed(address):
            raise UnsafeURL("names a forbidden address (link-local or cloud metadata)")
        return destination

    def allows(self, url: object) -> bool:
        """Is ``url`` an http(s) URL the notifier may send to?"""
        try:
            self.check(url)
        except UnsafeURL:
            return False
        return True

    def address_allowed(self, address: IPAddress | str) -> bool:
        """May a connection go to ``address``? Forbidden networks pass only when the
        allow-list names that very address."""
        ip = _as_address(address) if isinstance(address, str) else address
        if ip is None:
            return False
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        candidates = (ip,) if mapped is None else (ip, mapped)
        if not any(candidate in net for candidate in candidates for net in self.forbidden):
            return True
        named = {rule.address for rule in self.rules or ()}
        return any(candidate in named for candidate in candidates)


def networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


def _bare_host(host: str) -> str:
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _parse_rule(entry: str) -> HostRule:
    if not entry.isascii() or _AMBIGUOUS.search(entry) or "%" in entry:
        raise ValueError("an allowed_webhook_hosts entry holds characters no host name has")
    try:
        parts = urlsplit(f"//{entry}")
        port = parts.port
    except ValueError:
        raise ValueError(f"allowed_webhook_hosts entry {entry!r} has a bad port") from None
    host = _bare_host(parts.hostname or "")
    wildcard_body = host[2:] if host.startswith("*.") else host
    if not wildcard_body or "*" in wildcard_body or parts.path or "@" in parts.netloc:
        raise ValueError(
            f"allowed_webhook_hosts entry {entry!r} is not host, *.domain or host:port"
        )
    return HostRule(host, port)
