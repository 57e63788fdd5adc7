"""Loopback stand-ins for the services alerts are delivered to: Slack, Discord, Twilio, webhooks.

Each stand-in is a real HTTP server on 127.0.0.1 (a free port), in a thread, answering the way
the service does: Slack checks for ``text`` and answers 200 ``ok`` or 400 ``invalid_payload``;
Discord refuses content over 2,000 characters and answers 204; Twilio checks the account path,
basic auth and form fields and answers 201 with the message, or its JSON error shape. Every
request is recorded so a test can assert what was sent.

    with standins.slack() as slack:
        slack.script(standins.slack_rate_limited("1"))   # the next answer; then the usual one
        ... post to slack.url ...
        assert slack.requests[-1].json() == {"text": "hi"}

``request_trigger`` serves a ``process_request`` plugin the way the engine does, for tests
that send alerts from the MAD plugin to the notifier over HTTP.

A scripted entry is a ``Reply`` or a function from the ``Recorded`` request to a ``Reply``.
``Reply(hold=event)`` answers only once the event is set (a slow service); holds are released
when the stand-in closes, and never last longer than ``HOLD_LIMIT`` seconds.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOLD_LIMIT = 10.0
DISCORD_MAX_CONTENT = 2000
TWILIO_MAX_BODY = 1600


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it; header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """URL-encoded form fields (the last value of each)."""
        fields = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {name: values[-1] for name, values in fields.items()}

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, encoded = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        return user, password


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None

    @classmethod
    def text(cls, status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, text.encode(), {"Content-Type": "text/plain", **(headers or {})})

    @classmethod
    def json(cls, status: int, document: Any, headers: Mapping[str, str] | None = None) -> Reply:
        body = json.dumps(document).encode()
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})


Responder = Callable[[Recorded], Reply]
Scripted = Reply | Responder


class StandIn:
    """A loopback HTTP server answering POSTs from a script, then with ``respond``."""

    def __init__(self, respond: Responder, path: str = "/") -> None:
        self._respond = respond
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._holds: list[threading.Event] = []
        self.requests: list[Recorded] = []
        self.received = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = self.base_url + path

    def script(self, *replies: Scripted) -> None:
        """Answer the next requests with these, in order, before the usual answer."""
        with self._lock:
            self._script.extend(replies)

    def close(self) -> None:
        with self._lock:
            for hold in self._holds:
                hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._script.popleft() if self._script else self._respond
        self.received.set()
        reply = scripted if isinstance(scripted, Reply) else scripted(request)
        if reply.hold is not None:
            with self._lock:
                self._holds.append(reply.hold)
            reply.hold.wait(HOLD_LIMIT)
        return reply


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Recorded(
                method="POST",
                path=parts.path,
                query=parse_qs(parts.query),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length),
            )
            reply = standin._answer(request)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status not in (204, 304):
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if reply.body and reply.status not in (204, 304):
                    self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# -- Slack incoming webhooks -------------------------------------------------------------------


def slack_answer(request: Recorded) -> Reply:
    try:
        payload = request.json()
    except ValueError:
        return slack_invalid_payload()
    if not isinstance(payload, dict):
        return slack_invalid_payload()
    if not payload.get("text") and not payload.get("blocks"):
        return Reply.text(400, "no_text")
    return Reply.text(200, "ok", {"Content-Type": "text/html"})


def slack_invalid_payload() -> Reply:
    return Reply.text(400, "invalid_payload")


def slack_rate_limited(retry_after: str = "1") -> Reply:
    return Reply.text(429, "rate_limited", {"Retry-After": retry_after})


@contextmanager
def slack() -> Iterator[StandIn]:
    with StandIn(slack_answer, "/services/T000/B000/slacksecrettoken") as standin:
        yield standin


# -- Discord webhooks --------------------------------------------------------------------------


def discord_answer(request: Recorded) -> Reply:
    try:
        payload = request.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not (payload.get("content") or payload.get("embeds")):
        return Reply.json(400, {"code": 50006, "message": "Cannot send an empty message"})
    content = payload.get("content") or ""
    if len(content.encode("utf-16-le")) // 2 > DISCORD_MAX_CONTENT:
        return Reply.json(
            400,
            {
                "code": 50035,
                "message": "Invalid Form Body",
                "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}},
            },
        )
    return Reply(204)


def discord_rate_limited(retry_after: float = 0.25) -> Reply:
    document = {"message": "You are being rate limited.", "retry_after": retry_after}
    header = str(max(1, round(retry_after + 0.5)))
    return Reply.json(429, {**document, "global": False}, {"Retry-After": header})


@contextmanager
def discord() -> Iterator[StandIn]:
    with StandIn(discord_answer, "/api/webhooks/1234/discordsecrettoken") as standin:
        yield standin


# -- generic webhooks --------------------------------------------------------------------------


def webhook_answer(request: Recorded) -> Reply:
    return Reply.json(200, {"accepted": True})


def server_error(status: int = 500) -> Reply:
    return Reply.text(status, "<html>upstream trouble</html>")


@contextmanager
def webhook(path: str = "/hooks/alerts") -> Iterator[StandIn]:
    with StandIn(webhook_answer, path) as standin:
        yield standin


# -- Twilio Messages API -----------------------------------------------------------------------

_TWILIO_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json")


def twilio_error(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> Reply:
    document = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Reply.json(status, document, headers)


def twilio_unauthorized() -> Reply:
    return twilio_error(401, 20003, "Authenticate")


def twilio_rate_limited(retry_after: str = "1") -> Reply:
    return twilio_error(429, 20429, "Too Many Requests", {"Retry-After": retry_after})


def twilio_answer(sid: str, token: str) -> Responder:
    """Twilio's checks, in its order: the path, the credentials, then the form fields."""

    def answer(request: Recorded) -> Reply:
        match = _TWILIO_PATH.fullmatch(request.path)
        if match is None or match["sid"] != sid:
            return twilio_error(404, 20404, "The requested resource was not found")
        if request.basic_auth() != (sid, token):
            return twilio_unauthorized()
        form = request.form()
        if not form.get("To"):
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From"):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        body = form.get("Body", "")
        if not body:
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > TWILIO_MAX_BODY:
            return twilio_error(400, 21617, "The concatenated message body exceeds the limit.")
        message = {
            "sid": "SM" + "0" * 32,
            "account_sid": sid,
            "to": form["To"],
            "from": form["From"],
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "api_version": "2010-04-01",
        }
        return Reply.json(201, message)

    return answer


@contextmanager
def twilio(sid: str, token: str) -> Iterator[StandIn]:
    """Twilio for one account; point ``TWILIO_API_BASE_URL`` at ``.base_url``."""
    with StandIn(twilio_answer(sid, token)) as standin:
        yield standin


# -- the engine's request trigger route --------------------------------------------------------


def engine_route(
    process_request: Callable[..., Any],
    influxdb3_local: Any,
    args: Mapping[str, str] | None = None,
    token: str | None = None,
) -> Responder:
    """Answer ``/api/v3/engine/<path>`` as the engine does for a ``request:<path>`` trigger.

    Without the bearer ``token`` it answers 401; otherwise it calls the plugin with lower-cased
    headers (``authorization`` removed), the body as bytes and the query parameters, and turns
    its return value (a dict, a str, or ``(body, status[, headers])``) into the HTTP answer.
    """

    def answer(request: Recorded) -> Reply:
        if token is not None and request.headers.get("authorization") not in (
            f"Bearer {token}",
            f"Token {token}",
        ):
            return Reply.json(401, {"error": "the request was not authenticated"})
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        query = {name: values[-1] for name, values in request.query.items()}
        result = process_request(
            influxdb3_local, query, headers, request.body, dict(args) if args else None
        )
        status, extra = 200, {}
        if isinstance(result, tuple):
            result, status, *rest = result
            extra = dict(rest[0]) if rest else {}
        if isinstance(result, str):
            return Reply.text(status, result, extra)
        return Reply.json(status, result, extra)

    return answer


@contextmanager
def request_trigger(
    process_request: Callable[..., Any],
    influxdb3_local: Any,
    args: Mapping[str, str] | None = None,
    token: str | None = None,
    path: str = "notify",
) -> Iterator[StandIn]:
    """A loopback engine serving one request trigger; ``.url`` is its endpoint."""
    route = engine_route(process_request, influxdb3_local, args, token)
    with StandIn(route, f"/api/v3/engine/{path}") as standin:
        yield standin
