"""Turning the notifier against its own server (SSRF): each attack over real loopback sockets.

The set-up of most attacks: the allow-list names one loopback receiver (``listed``) and the
attack URL tries to make the request land on another (``target``), which must receive nothing.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from madcheck.config.settings import ConfigError, load_config
from madcheck.engine.api import EngineAPI
from madcheck.notify.allowlist import (
    DEFAULT_FORBIDDEN_NETWORKS,
    HostAllowList,
    UnsafeURL,
    parse_destination,
)
from madcheck.notify.channels import SENDERS
from madcheck.notify.channels.base import Message, SendContext
from madcheck.notify.retry import RetryPolicy
from tests import standins
from tests.notifier_calls import FAST, TWILIO_SID, TWILIO_TOKEN, call, request, twilio_config
from tests.standins import Reply
from tests.support import make_engine, run_mad_plugin

LOOPBACK_FORBIDDEN = (*DEFAULT_FORBIDDEN_NETWORKS, "127.0.0.0/8", "::1/128")
ONE_TRY = RetryPolicy(attempts=1, backoff=(0.0, 0.0), timeout=5.0)


def port_of(standin: standins.StandIn) -> int:
    return int(urlsplit(standin.base_url).port or 0)


def send(channel: str, config: dict[str, str], allowed: HostAllowList) -> tuple[bool, str]:
    """One sender, called as the notifier calls it, over a real session."""
    import requests

    context = SendContext(ONE_TRY, allowed, {}, sleep=lambda _: None)
    with requests.Session() as session:
        try:
            delivery = SENDERS[channel](Message("alert"), config, session, context)
        except ValueError as problem:
            return False, str(problem)
    return delivery.ok, delivery.reason


# -- URLs the parsers read differently ------------------------------------------------------------


def test_the_backslash_attack_is_refused_and_nothing_reaches_the_other_port():
    with standins.webhook() as listed, standins.webhook() as target:
        a, b = port_of(listed), port_of(target)
        attack = f"http://127.0.0.1:{b}\\@127.0.0.1:{a}/hooks/alerts"
        # The premise: urlsplit sees the listed port, the HTTP client the other one.
        assert urlsplit(attack).port == a and parse_url(attack).port == b

        answer, status = call(
            request(http={"http_webhook_url": attack}),
            {**FAST, "allowed_webhook_hosts": f"127.0.0.1:{a}"},
        )

        assert status == 502
        assert answer["results"]["http"]["ok"] is False
        assert "backslash" in answer["results"]["http"]["reason"]
        assert target.requests == [] and listed.requests == []


@pytest.mark.parametrize(
    "shape",
    [
        "http://127.0.0.1:{b}\\@127.0.0.1:{a}/x",  # backslash before @
        "http://127.0.0.1:{b}\\\\127.0.0.1:{a}/x",  # backslashes as slashes
        "http://127.0.0.1:{b}\t@127.0.0.1:{a}/x",  # a tab in the authority
        "http://127.0.0.1:{b} @127.0.0.1:{a}/x",  # a space in the authority
        "http://127.0.0.1:{b}\r\n@127.0.0.1:{a}/x",  # CR LF
        "http://127.0.0.1:{b}\x00@127.0.0.1:{a}/x",  # NUL
        "http://127.0.0.1:{a}@127.0.0.1:{b}/x",  # userinfo that looks like the listed host
        "http://user:pw@127.0.0.1:{a}/x",  # any userinfo
        "http://127.0.0.1:{b}%40127.0.0.1:{a}/x",  # an encoded @
        "http://127.0.0.1:{a}\u3002@127.0.0.1:{b}/x",  # a non-ASCII dot
        " http://127.0.0.1:{b}/x",  # leading space
        "HTTP://127.0.0.1:{b}/x",  # only the case of the scheme differs: still not listed
        "http://127.1:{b}/x",  # a short numeric form of 127.0.0.1
    ],
)
def test_ambiguous_urls_are_refused_without_any_request(shape):
    with standins.webhook() as listed, standins.webhook() as target:
        url = shape.format(a=port_of(listed), b=port_of(target))
        ok, reason = send(
            "http", {"http_webhook_url": url}, HostAllowList.parse(f"127.0.0.1:{port_of(listed)}")
        )

        assert ok is False and reason.startswith("http_webhook_url ")
        assert target.requests == [] and listed.requests == []
        assert str(port_of(target)) not in reason  # the URL (a secret) is never repeated


def test_a_listed_url_still_works_and_case_or_a_final_dot_do_not_matter():
    with standins.webhook() as listed:
        port = port_of(listed)
        allowed = HostAllowList.parse(f"LOCALHOST:{port}")
        url = f"http://LocalHost:{port}/hooks/alerts"
        assert send("http", {"http_webhook_url": url}, allowed) == (True, "HTTP 200")
        assert len(listed.requests) == 1
        assert allowed.allows(f"http://localhost.:{port}/x")


# -- redirects -------------------------------------------------------------------------------------


def test_a_redirect_to_an_unlisted_port_is_not_followed():
    with standins.webhook() as listed, standins.webhook() as target:
        listed.script(Reply(302, headers={"Location": target.url}))
        answer, _ = call(
            request(http={"http_webhook_url": listed.url}),
            {**FAST, "allowed_webhook_hosts": f"127.0.0.1:{port_of(listed)}"},
        )

        assert answer["results"]["http"] == {"ok": False, "reason": "HTTP 302"}
        assert len(listed.requests) == 1 and target.requests == []


def test_a_session_told_to_follow_redirects_still_checks_the_new_url():
    import requests

    from madcheck.notify.channels.guard import guard

    with standins.webhook() as listed, standins.webhook() as target:
        listed.script(Reply(307, headers={"Location": target.url}))
        with requests.Session() as session:
            adapter = guard(session, HostAllowList.parse(f"127.0.0.1:{port_of(listed)}"))
            with pytest.raises(requests.exceptions.InvalidURL):
                session.post(listed.url, json={}, timeout=5, allow_redirects=True)
        assert adapter.refusal is not None and "allowed_webhook_hosts" in adapter.refusal
        assert target.requests == []


# -- the address actually connected to (DNS rebinding) ---------------------------------------------


@pytest.fixture
def rebinding_dns(monkeypatch):
    """``hooks.rebind.test`` resolves to 127.0.0.1, as a rebinding DNS server would answer."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.rstrip(".").lower() == "hooks.rebind.test":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def test_a_listed_name_that_resolves_to_a_forbidden_address_is_refused(rebinding_dns):
    with standins.webhook() as target:
        url = f"http://hooks.rebind.test:{port_of(target)}/hooks/alerts"
        allowed = HostAllowList.parse("hooks.rebind.test", forbidden=LOOPBACK_FORBIDDEN)

        ok, reason = send("http", {"http_webhook_url": url}, allowed)

        assert ok is False
        assert reason == (
            "refused: http_webhook_url connects to a forbidden address "
            "(link-local or cloud metadata)"
        )
        assert target.requests == []
        # The control: with loopback not forbidden the same name and receiver work.
        assert send("http", {"http_webhook_url": url}, HostAllowList.parse("hooks.rebind.test"))[0]
        assert len(target.requests) == 1


def test_without_an_allow_list_a_name_resolving_to_a_forbidden_address_is_refused():
    with standins.slack() as target:
        url = f"http://localhost:{port_of(target)}/services/T/B/x"
        ok, reason = send(
            "slack", {"slack_webhook_url": url}, HostAllowList(None, _nets(LOOPBACK_FORBIDDEN))
        )
        assert (ok, reason.split(" connects")[0]) == (False, "refused: slack_webhook_url")
        assert target.requests == []


def test_a_forbidden_address_named_in_the_allow_list_by_address_is_allowed():
    with standins.webhook() as listed:
        port = port_of(listed)
        by_address = HostAllowList.parse(f"127.0.0.1:{port}", forbidden=LOOPBACK_FORBIDDEN)
        by_name = HostAllowList.parse(f"localhost:{port}", forbidden=LOOPBACK_FORBIDDEN)

        assert send("http", {"http_webhook_url": listed.url}, by_address) == (True, "HTTP 200")
        url = f"http://localhost:{port}/hooks/alerts"
        assert send("http", {"http_webhook_url": url}, by_name)[0] is False
        assert len(listed.requests) == 1


def test_twilio_cannot_be_pointed_at_a_forbidden_address():
    import requests

    with standins.twilio(TWILIO_SID, TWILIO_TOKEN) as service:
        context = SendContext(
            ONE_TRY,
            HostAllowList(None, _nets(LOOPBACK_FORBIDDEN)),
            {"TWILIO_API_BASE_URL": service.base_url},
            sleep=lambda _: None,
        )
        with requests.Session() as session:
            delivery = SENDERS["sms"](Message("alert"), twilio_config(), session, context)
        assert delivery.ok is False and delivery.reason.startswith("refused: TWILIO_API_BASE_URL")
        assert service.requests == []


# -- cloud metadata and link-local without an allow-list -------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/x",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
        "http://169.254.43518/",
    ],
)
def test_metadata_and_link_local_destinations_are_refused_by_default(url):
    ok, reason = send("http", {"http_webhook_url": url}, HostAllowList.parse(None))
    assert ok is False and reason.startswith("http_webhook_url ")
    assert not HostAllowList.parse(None).allows(url)


def test_metadata_can_be_allowed_only_by_naming_its_address():
    assert HostAllowList.parse("169.254.169.254").allows("http://169.254.169.254/latest")
    assert HostAllowList.parse("[fd00:ec2::254]").allows("http://[fd00:ec2::254]/latest")
    assert not HostAllowList.parse("*.254").allows("http://169.254.169.254/latest")
    assert not HostAllowList.parse("*.0.1").allows("http://10.0.0.1/x")
    assert HostAllowList.parse(None).address_allowed("93.184.216.34")
    assert not HostAllowList.parse(None).address_allowed("::ffff:169.254.169.254")


def test_the_notifier_warns_once_that_it_runs_without_an_allow_list():
    engine = EngineAPI(database="alerts", trigger_name="notify")
    with standins.slack() as slack:
        for _ in range(3):
            call(request(slack={"slack_webhook_url": slack.url}), FAST, engine)
        listed = EngineAPI(database="alerts", trigger_name="notify")
        call(
            request(slack={"slack_webhook_url": slack.url}),
            {**FAST, "allowed_webhook_hosts": f"127.0.0.1:{port_of(slack)}"},
            listed,
        )

    warnings = [line for line in engine.log_texts("WARN") if "allowed_webhook_hosts" in line]
    assert len(warnings) == 1 and "without allowed_webhook_hosts" in warnings[0]
    assert not [line for line in listed.log_texts("WARN") if "allowed_webhook_hosts" in line]
    assert len(slack.requests) == 4


# -- the MAD trigger refuses an unusable webhook URL when its config loads -------------------------


@pytest.mark.parametrize(
    ("argument", "url"),
    [
        ("slack_webhook_url", "ftp://x"),
        ("discord_webhook_url", "file:///etc/passwd"),
        ("http_webhook_url", "http://169.254.169.254\\@hooks.slack.com/"),
        ("http_webhook_url", "gopher://127.0.0.1:6379/_FLUSHALL"),
    ],
    ids=["ftp", "file", "backslash", "gopher"],
)
def test_a_webhook_url_that_is_not_usable_http_is_refused_at_config_load(argument, url):
    sender = argument.split("_")[0]
    arguments = {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": sender,
        argument: url,
    }
    with pytest.raises(ConfigError, match=argument) as refused:
        load_config(arguments, environ={})
    assert url not in str(refused.value)

    engine = make_engine()
    run_mad_plugin(engine, [], arguments)
    errors = engine.log_texts("ERROR")
    assert len(errors) == 1 and argument in errors[0] and url not in errors[0]


def test_parse_destination_agrees_with_the_client_on_ordinary_urls():
    for url, expected in [
        ("https://hooks.slack.com/services/T/B/x", ("https", "hooks.slack.com", 443)),
        ("http://[::1]:8080/x", ("http", "::1", 8080)),
        ("https://Discord.com./api/webhooks/1/t", ("https", "discord.com", 443)),
    ]:
        destination = parse_destination(url)
        assert (destination.scheme, destination.host, destination.port) == expected
    with pytest.raises(UnsafeURL):
        parse_destination("http://[fe80::1%25eth0]/x")


def _nets(texts):
    from madcheck.notify.allowlist import networks

    return networks(texts)


_NASTY = st.sampled_from(
    [
        "",
        "@",
        "\\",
        "/",
        "?",
        "#",
        ":",
        "%40",
        "%2e",
        ".",
        "[",
        "]",
        "::1",
        "80",
        "8080",
        "127.0.0.1",
        "hooks.slack.com",
        "user",
        " ",
        "\t",
        "\u3002",
        "%",
        ";",
        "0x7f",
        "evil",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scheme=st.sampled_from(["http", "https", "HTTP", "ftp"]), parts=st.lists(_NASTY, max_size=8))
def test_an_accepted_url_goes_where_requests_would_send_it(scheme, parts):
    """Any URL the notifier accepts, requests prepares to the very host and port checked."""
    import requests

    url = f"{scheme}://" + "".join(parts)
    try:
        destination = parse_destination(url)
    except UnsafeURL:
        return
    prepared = parse_url(requests.Request("POST", url).prepare().url or "")
    host = (prepared.host or "").lower().strip("[]").rstrip(".")
    assert (host, prepared.port or {"http": 80, "https": 443}[destination.scheme]) == (
        destination.host,
        destination.port,
    )


# -- hostile answers: a stranger's server may answer without end ---------------------------------


class RawServer:
    """A loopback socket server that answers every connection with ``answer(connection)``."""

    def __init__(self, answer) -> None:
        import threading

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.sent = 0
        self.answer = answer
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    connection.recv(65536)
                    self.answer(self, connection)
                except OSError:
                    pass  # the client hung up: what the test wants

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def endless(server: RawServer, connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    block = b"x" * 65536
    while not server.stop.is_set() and server.sent < 1 << 30:
        connection.sendall(block)
        server.sent += len(block)


def dripping(server: RawServer, connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while not server.stop.wait(0.02):
        connection.sendall(b"x")
        server.sent += 1


def test_an_endless_answer_is_read_at_most_64_kib():
    import tracemalloc

    server = RawServer(endless)
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        tracemalloc.start()
        try:
            ok, reason = send("http", {"http_webhook_url": url}, HostAllowList.parse(None))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.close()
    assert (ok, reason) == (True, "HTTP 200")
    assert peak < 4 * 1024 * 1024
    assert server.sent < 1 << 30  # the client hung up long before the server ran out


def test_a_dripping_answer_is_given_up_after_the_request_timeout():
    import requests

    server = RawServer(dripping)
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        policy = RetryPolicy(attempts=1, backoff=(0.0, 0.0), timeout=0.3)
        context = SendContext(policy, HostAllowList.parse(None), {}, sleep=lambda _: None)
        with requests.Session() as session:
            delivery = SENDERS["http"](
                Message("alert"), {"http_webhook_url": url}, session, context
            )
    finally:
        server.close()
    assert (delivery.ok, delivery.reason) == (False, "timed out")
    assert server.sent < 100_000  # never read to the end the server promised
