"""Each alert event reaches each channel once, and a notifier call ends by ``send_deadline``.

The notifier remembers, in its trigger cache, the (event id, channel) pairs it delivered and
those still being sent by a thread an earlier call left behind at its deadline. Over real
loopback sockets: a stand-in Slack, a generic webhook that hangs, and the MAD plugin posting
through a loopback engine route, with a notifier outage in between.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from madcheck.engine.api import EngineAPI
from madcheck.engine.loader import load_entry_point
from madcheck.notify.deliveries import Claim, DeliveryLog
from madcheck.plugin.delivery import wait_for_delivery
from tests import standins
from tests.notifier_calls import FAST, PLUGIN, call, request
from tests.support import DELIVERY_WAIT_S, make_engine, rows, run_mad_plugin, wait_until

TOKEN = "apiv3_once_secret_token"
BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]
DEADLINE = {**FAST, "send_deadline": "300ms"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the delivery log ------------------------------------------------------------------------


def test_a_pair_is_sent_by_one_request_and_remembered_once_delivered():
    log = DeliveryLog()
    key = ("event-1", "slack")
    assert log.claim(key) == (Claim.MINE, None)
    state, running = log.claim(key)  # a retry while the first send runs: wait for it
    assert state is Claim.IN_FLIGHT and running is not None and not running.is_set()
    log.finish(key, delivered=True)
    assert running.is_set() and log.claim(key) == (Claim.DELIVERED, None)
    assert log.claim(("event-1", "discord"))[0] is Claim.MINE  # another channel: its own pair


def test_a_failed_send_can_be_tried_again():
    log = DeliveryLog()
    log.claim(("e", "slack"))
    log.finish(("e", "slack"), delivered=False)
    assert log.claim(("e", "slack"))[0] is Claim.MINE


def test_pairs_are_kept_for_the_retention_and_bounded_in_number():
    clock = Clock()
    log = DeliveryLog(retention_s=3600, max_entries=3, clock=clock)
    for n in range(3):
        log.claim((f"e{n}", "slack"))
        log.finish((f"e{n}", "slack"), delivered=True)
    clock.now = 3599.0
    assert log.claim(("e0", "slack"))[0] is Claim.DELIVERED  # within the hour: remembered
    log.claim(("e3", "slack"))
    log.finish(("e3", "slack"), delivered=True)  # a fourth: the oldest goes
    assert len(log) == 3 and log.claim(("e0", "slack"))[0] is Claim.MINE
    clock.now = 3599.0 + 3601.0
    assert log.claim(("e9", "x"))[0] is Claim.MINE and len(log) == 0


def test_unfinished_sends_are_bounded():
    log = DeliveryLog(max_in_flight=2)
    assert log.claim(("a", "slack"))[0] is Claim.MINE
    assert log.claim(("b", "slack"))[0] is Claim.MINE
    assert log.claim(("c", "slack"))[0] is Claim.BUSY


# -- the notifier plugin ---------------------------------------------------------------------


def with_event(body: dict[str, Any], event_id: Any) -> dict[str, Any]:
    return {**body, "alert": {"table": "cpu", "event_id": event_id}}


def test_a_repeated_request_is_not_sent_again_to_a_channel_that_got_it():
    engine = EngineAPI(database="alerts", trigger_name="notify")
    with standins.slack() as slack:
        body = with_event(request(slack={"slack_webhook_url": slack.url}), "ev-1")
        first, _ = call(body, FAST, engine)
        again, status = call(body, FAST, engine)
        other, _ = call(with_event(body, "ev-2"), FAST, engine)
    assert first["results"]["slack"] == {"ok": True, "reason": "HTTP 200"}
    assert (status, again["results"]["slack"]) == (200, {"ok": True, "reason": "already delivered"})
    assert other["results"]["slack"]["reason"] == "HTTP 200"  # a new event is sent
    assert len(slack.requests) == 2
    assert "notifier: slack already has this event; not sent again" in engine.log_texts("INFO")


def test_without_an_event_id_every_request_is_sent():
    engine = EngineAPI(database="alerts", trigger_name="notify")
    with standins.slack() as slack:
        body = request(slack={"slack_webhook_url": slack.url})
        call(body, FAST, engine)
        call(body, FAST, engine)
    assert len(slack.requests) == 2


@pytest.mark.parametrize("event_id", ["", "x" * 129, 42, ["a"], "tab\there", "café"])
def test_an_unusable_event_id_is_a_bad_request_and_nothing_is_sent(event_id):
    with standins.slack() as slack:
        answer, status = call(with_event(request(slack={"slack_webhook_url": slack.url}), event_id))
    assert status == 400 and "alert.event_id" in answer["error"]
    assert slack.requests == []


def hanging_webhook(release: threading.Event, answered: threading.Event) -> standins.StandIn:
    def respond(recorded: standins.Recorded) -> standins.Reply:
        release.wait(standins.HOLD_LIMIT)
        answered.set()
        return standins.webhook_answer(recorded)

    return standins.StandIn(respond, "/hooks/hanging")


def test_a_hanging_channel_is_reported_failed_at_the_deadline_and_never_sent_twice():
    engine = EngineAPI(database="alerts", trigger_name="notify")
    release, answered = threading.Event(), threading.Event()
    with standins.slack() as slack, hanging_webhook(release, answered) as hook:
        body = with_event(
            request(slack={"slack_webhook_url": slack.url}, http={"http_webhook_url": hook.url}),
            "ev-hang",
        )
        first, status = call(body, DEADLINE, engine)
        assert not answered.is_set()  # the call returned while the channel still hung
        assert status == 502 and first["results"]["slack"]["ok"] is True
        assert first["results"]["http"] == {"ok": False, "reason": "still sending at send_deadline"}
        retry, _ = call(body, DEADLINE, engine)  # the caller retries while the send still hangs
        assert retry["results"]["slack"] == {"ok": True, "reason": "already delivered"}
        assert retry["results"]["http"]["ok"] is False
        release.set()
        assert wait_until(answered.is_set)
        last, status = call(body, DEADLINE, engine)
    assert status == 200 and last["results"]["http"]["ok"] is True
    assert len(slack.requests) == 1 and len(hook.requests) == 1


def test_a_channel_asking_to_wait_longer_than_the_deadline_is_reported_with_its_retry_after():
    with standins.slack() as slack:
        slack.script(standins.slack_rate_limited("120"))
        patient = {**DEADLINE, "retry_after_cap": "30s"}
        answer, _ = call(request(slack={"slack_webhook_url": slack.url}), patient)
    assert answer["results"]["slack"] == {
        "ok": False,
        "reason": "HTTP 429 (Slack rate_limited)",
        "retry_after": 120.0,
    }
    assert len(slack.requests) == 1  # 120 s is past the deadline: no pause, no second attempt


# -- both plugins: zero duplicates on any channel --------------------------------------------


def notifier_plugin(*arguments: Any) -> Any:
    return load_entry_point(PLUGIN, "process_request")(*arguments)


def mad_args(port: int, slack_url: str, hook_url: str, **extra: str) -> dict[str, str]:
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": "slack.http",
        "slack_webhook_url": slack_url,
        "http_webhook_url": hook_url,
        "influxdb3_auth_token": TOKEN,
        "port_override": str(port),
        "retry_backoff": "0",
        "notification_attempts": "1",
        "outbox_backoff": "10ms",
        "outbox_backoff_max": "50ms",
        "warm_start": "false",
        **extra,
    }


def alerts_for(hosts: str) -> list[dict]:
    return [rows("cpu", [*BASE, 100, 100], host=host) for host in hosts]


def per_channel(slack: standins.StandIn, hook: standins.StandIn) -> tuple[Counter, Counter]:
    return (
        Counter(r.json()["text"] for r in slack.requests),
        Counter(r.json()["alert"]["event_id"] for r in hook.requests),
    )


def test_a_notifier_outage_that_loses_answers_duplicates_nothing():
    """The engine route runs the notifier but its answer is lost (503) for the first requests,
    as behind a failing proxy: the MAD side retries whole payloads the channels already got."""
    notifier_engine = EngineAPI(database="mydb", trigger_name="notify")
    route = standins.engine_route(notifier_plugin, notifier_engine, FAST, TOKEN)
    lost = {"left": 4}

    def flaky(recorded: standins.Recorded) -> standins.Reply:
        reply = route(recorded)
        if lost["left"] > 0:
            lost["left"] -= 1
            return standins.server_error(503)
        return reply

    with (
        standins.slack() as slack,
        standins.webhook() as hook,
        standins.StandIn(flaky, "/api/v3/engine/notify") as endpoint,
    ):
        port = int(endpoint.base_url.rsplit(":", 1)[1])
        engine = make_engine()
        run_mad_plugin(engine, alerts_for("abc"), mad_args(port, slack.url, hook.url))
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
    texts, events = per_channel(slack, hook)
    assert len(endpoint.requests) > 3  # the outage made the MAD side retry
    assert len(texts) == 3 and set(texts.values()) == {1}
    assert len(events) == 3 and set(events.values()) == {1}


def test_one_hanging_channel_duplicates_nothing_on_any_channel():
    notifier_engine = EngineAPI(database="mydb", trigger_name="notify")
    release, answered = threading.Event(), threading.Event()
    with (
        standins.slack() as slack,
        hanging_webhook(release, answered) as hook,
        standins.request_trigger(notifier_plugin, notifier_engine, DEADLINE, TOKEN) as endpoint,
    ):
        port = int(endpoint.base_url.rsplit(":", 1)[1])
        engine = make_engine()
        run_mad_plugin(engine, alerts_for("abc"), mad_args(port, slack.url, hook.url))
        assert wait_until(lambda: len(endpoint.requests) >= 9)  # retries while it hangs
        release.set()
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
    texts, events = per_channel(slack, hook)
    assert len(texts) == 3 and set(texts.values()) == {1}
    assert len(events) == 3 and set(events.values()) == {1}
    retried = [r.json()["senders_config"] for r in endpoint.requests[3:]]
    assert retried and all(set(config) == {"http"} for config in retried)
