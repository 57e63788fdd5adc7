"""No lost alert, no stalled write path: the plugin file against a loopback notifier that fails.

Alerts are posted by the trigger's background sender; a call only queues them and logs what the
sender did since the previous call. The tests wait for the sender with the documented functions
of ``madcheck.plugin.delivery`` instead of sleeping.
"""

import gc
import re
import threading

from madcheck.engine.cache import TriggerCache
from madcheck.plugin.delivery import wait_for_delivery, wait_for_sender
from madcheck.plugin.writes import STATE_KEY
from tests import standins
from tests.support import (
    DELIVERY_WAIT_S,
    delivered_and_logged,
    free_port,
    make_engine,
    receiver,
    rows,
    run_mad_plugin,
    tried_and_logged,
)

BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]
HOOK = "https://hooks.slack.test/services/T000/B000/DELIVERYSECRET"
DISCORD = "https://discord.test/api/webhooks/1/deliverysecret"
TOKEN = "apiv3_delivery_secret_token"
OK_BODY = {"status": "ok", "results": {"slack": {"ok": True, "reason": "HTTP 200"}}}
OK_ANSWER = (200, OK_BODY, 0, {})


def args_for(port, **extra):
    return {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:9:2",
        "senders": "slack",
        "slack_webhook_url": HOOK,
        "influxdb3_auth_token": TOKEN,
        "port_override": str(port),
        "retry_backoff": "0",
        "notification_attempts": "1",
        "outbox_backoff": "1h",  # one try, then the test decides when the next one comes
        "outbox_backoff_max": "2h",
        "warm_start": "false",
        **extra,
    }


def alert_batch(host, start_s=1_700_000_000):
    """One series whose last two points are outliers: one count alert."""
    return [rows("cpu", [*BASE, 100, 100], start_s=start_s, host=host)]


def quiet_batch():
    return [rows("mem", [1.0], host="x")]  # nothing for the trigger's table


def hosts_sent(notifier):
    return [r.body["alert"]["tags"]["host"] for r in notifier.requests]


def state_of(engine):
    return engine.cache.get(STATE_KEY)


def skip_backoff(engine):
    """Move the outbox's clock past every backoff and wake the sender."""
    state = state_of(engine)
    base = state.outbox.clock()
    state.outbox.clock = lambda: base + 3 * 3600
    state.sender.ensure_running()


def test_alerts_raised_during_an_outage_are_all_delivered_once_in_order_afterwards():
    port = free_port()  # the notifier is down: connections are refused
    engine = make_engine()
    args = args_for(port)
    run_mad_plugin(engine, alert_batch("a"), args)
    assert wait_for_sender(engine, DELIVERY_WAIT_S)
    run_mad_plugin(engine, alert_batch("b"), args)  # logs the failed try, queues b
    run_mad_plugin(engine, alert_batch("c"), args)  # backing off: says c waits
    (error,) = engine.log_texts("ERROR")
    assert "alert delivery failed (connection failed)" in error
    assert "2 alert(s) waiting in the outbox, next try in" in error
    (waiting,) = [w for w in engine.log_texts("WARN") if "notifier unavailable" in w]
    assert "1 new alert(s) wait: 3 alert(s) waiting in the outbox" in waiting
    with receiver(port) as notifier:
        notifier.script = [OK_ANSWER]
        skip_backoff(engine)
        assert delivered_and_logged(engine, args)
        run_mad_plugin(engine, alert_batch("d", start_s=1_700_001_000), args)
        assert delivered_and_logged(engine, args)
    assert hosts_sent(notifier) == ["a", "b", "c", "d"]
    sent = [line for line in engine.log_texts("INFO") if "alert sent to slack" in line]
    assert len(sent) == 4 and "(after 1 failed tries)" in sent[0]


def test_the_sender_keeps_trying_during_an_outage_without_further_writes():
    with receiver() as notifier:
        notifier.script = [(503, {"error": "starting"}, 0, {})] * 3 + [OK_ANSWER]
        engine = make_engine()
        args = args_for(notifier.port, outbox_backoff="10ms", outbox_backoff_max="20ms")
        run_mad_plugin(engine, alert_batch("a"), args)  # the only call with data
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
        assert len(notifier.requests) == 4 and len(state_of(engine).outbox) == 0
        run_mad_plugin(engine, [], args)
        assert len(notifier.requests) == 4  # a delivered alert is never sent again
    (error,) = engine.log_texts("ERROR")
    assert "alert delivery failed (HTTP 503, 3 failed tries): 0 alert(s) waiting" in error
    (sent,) = [line for line in engine.log_texts("INFO") if "alert sent" in line]
    assert "(after 3 failed tries)" in sent


def test_only_the_failed_sender_is_sent_again():
    partial = {
        "status": "partial",
        "results": {
            "slack": {"ok": True, "reason": "HTTP 200"},
            "discord": {"ok": False, "reason": "HTTP 500"},
        },
    }
    with receiver() as notifier:
        notifier.script = [(502, partial, 0, {}), OK_ANSWER]
        engine = make_engine()
        args = args_for(
            notifier.port,
            senders="slack.discord",
            discord_webhook_url=DISCORD,
            notification_attempts="3",
            outbox_backoff="10ms",
        )
        run_mad_plugin(engine, alert_batch("a"), args)
        assert delivered_and_logged(engine, args)
    first, second = notifier.requests  # a partial answer is not retried with the same payload
    assert set(first.body["senders_config"]) == {"slack", "discord"}
    assert second.body["senders_config"] == {"discord": {"discord_webhook_url": DISCORD}}
    assert second.body["notification_text"] == first.body["notification_text"]
    assert second.body["alert"]["event_id"] == first.body["alert"]["event_id"]
    (error,) = engine.log_texts("ERROR")
    assert "failed senders: discord (HTTP 500); only those will be retried" in error


def test_a_call_returns_while_the_notifier_still_holds_the_request():
    release = threading.Event()
    answered = threading.Event()

    def slow(request):
        release.wait(standins.HOLD_LIMIT)
        answered.set()
        return standins.Reply.json(200, OK_BODY)

    with standins.StandIn(slow, "/api/v3/engine/notify") as notifier:
        engine = make_engine()
        args = args_for(int(notifier.base_url.rsplit(":", 1)[1]))
        run_mad_plugin(engine, [alert_batch(h)[0] for h in "abc"], args)
        # had the call waited for the notifier, the hold would have run out and been answered
        assert not answered.is_set()
        release.set()
        assert delivered_and_logged(engine, args)
    assert [r.json()["alert"]["tags"]["host"] for r in notifier.requests] == ["a", "b", "c"]


def test_a_hanging_notifier_is_tried_once_per_backoff_and_calls_say_new_alerts_wait():
    with receiver() as notifier:
        notifier.script = [(200, {}, 3.0, {})]  # answers long after every timeout
        engine = make_engine()
        args = args_for(notifier.port, notification_timeout="100ms", notification_attempts="2")
        run_mad_plugin(engine, [alert_batch(host)[0] for host in "abcde"], args)
        assert tried_and_logged(engine, args)
        assert len(notifier.requests) == 2  # two attempts at the oldest alert, then backoff
        (error,) = engine.log_texts("ERROR")
        assert "alert delivery failed (timed out after 2 attempts)" in error
        assert "5 alert(s) waiting in the outbox, next try in" in error
        run_mad_plugin(engine, [], args)  # a quiet call within the backoff says nothing
        assert not any("notifier unavailable" in w for w in engine.log_texts("WARN"))
        run_mad_plugin(engine, alert_batch("f", start_s=1_700_001_000), args)
        assert wait_for_sender(engine, DELIVERY_WAIT_S)
        assert len(notifier.requests) == 2  # new alerts do not cut the backoff short
        (waiting,) = [w for w in engine.log_texts("WARN") if "notifier unavailable" in w]
        assert "1 new alert(s) wait: 6 alert(s) waiting in the outbox" in waiting
        notifier.script = [OK_ANSWER]
        notifier._served = 0
        skip_backoff(engine)
        assert delivered_and_logged(engine, args)
    assert hosts_sent(notifier)[2:] == list("abcdef")


def test_a_notifier_retry_after_sets_the_next_try():
    with receiver() as notifier:
        notifier.script = [(429, {"error": "slow down"}, 0, {"Retry-After": "600"})]
        engine = make_engine()
        args = args_for(notifier.port, outbox_backoff="10ms", outbox_backoff_max="20ms")
        run_mad_plugin(engine, alert_batch("a"), args)
        assert tried_and_logged(engine, args)
    (error,) = engine.log_texts("ERROR")
    assert "alert delivery failed (HTTP 429)" in error
    next_try = float(re.search(r"next try in ([0-9.]+)s", error).group(1))
    assert 500 < next_try <= 600  # the notifier's 600 s, not the 10 ms backoff


def test_a_full_outbox_drops_the_oldest_with_one_error_per_call():
    port = free_port()
    engine = make_engine()
    batch = [alert_batch(host)[0] for host in "abcd"]
    run_mad_plugin(engine, batch, args_for(port, outbox_size="2"))
    dropped = [e for e in engine.log_texts("ERROR") if "outbox full" in e]
    assert dropped == [dropped[0]] and "dropped the 2 oldest undelivered alert(s)" in dropped[0]
    assert wait_for_sender(engine, DELIVERY_WAIT_S)
    with receiver(port) as notifier:
        skip_backoff(engine)
        assert delivered_and_logged(engine, args_for(port, outbox_size="2"))
    assert hosts_sent(notifier) == ["c", "d"]


def test_waiting_alerts_survive_a_config_change_and_go_out_at_once_with_the_new_settings():
    port = free_port()
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(port))
    assert wait_for_sender(engine, DELIVERY_WAIT_S)  # failed; backing off for an hour
    old_sender = state_of(engine).sender
    new_hook = "https://hooks.slack.test/services/T000/B000/ROTATEDSECRET"
    with receiver(port) as notifier:
        run_mad_plugin(engine, [], args_for(port, slack_webhook_url=new_hook))
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
    (request,) = notifier.requests
    assert request.body["senders_config"] == {"slack": {"slack_webhook_url": new_hook}}
    # the replaced state's sender has stopped; the new state has its own
    assert old_sender.join(DELIVERY_WAIT_S) and state_of(engine).sender is not old_sender


def test_alerts_for_a_sender_no_longer_configured_are_dropped_with_an_error_count():
    port = free_port()
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(port))
    assert wait_for_sender(engine, DELIVERY_WAIT_S)
    args = args_for(port, senders="discord", discord_webhook_url=DISCORD)
    with receiver(port) as notifier:
        run_mad_plugin(engine, [], args)
        assert wait_for_delivery(engine, DELIVERY_WAIT_S)
    assert notifier.requests == []
    assert any(
        "dropped 1 waiting alert(s) whose senders are no longer configured" in line
        for line in engine.log_texts("ERROR")
    )


def test_a_malformed_request_answer_drops_the_alert_with_an_error():
    with receiver() as notifier:
        notifier.script = [(400, {"status": "failed", "error": "bad", "results": {}}, 0, {})]
        engine = make_engine()
        run_mad_plugin(engine, alert_batch("a"), args_for(notifier.port))
        assert delivered_and_logged(engine, args_for(notifier.port))
        assert len(notifier.requests) == 1
    (error,) = engine.log_texts("ERROR")
    assert "rejected 1 alert(s) as malformed (HTTP 400)" in error


def test_a_restart_empties_the_outbox_and_the_sender_of_a_dropped_state_ends():
    """The cache is the engine's only state: documented, and visible here."""
    cache = TriggerCache()
    engine = make_engine(cache=cache)
    run_mad_plugin(engine, alert_batch("a"), args_for(free_port()))
    assert wait_for_sender(engine, DELIVERY_WAIT_S)
    sender = cache.get(STATE_KEY).sender
    assert sender.running and len(cache.get(STATE_KEY).outbox) == 1
    cache.clear()  # a restart, or the trigger deleted: nothing refers to the state any more
    gc.collect()
    assert sender.join(DELIVERY_WAIT_S)  # the thread ended by itself
    run_mad_plugin(engine, [], args_for(free_port()))
    assert len(cache.get(STATE_KEY).outbox) == 0


def test_a_sender_thread_that_died_is_replaced_by_the_next_call():
    port = free_port()
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(port))
    assert wait_for_sender(engine, DELIVERY_WAIT_S)
    sender = state_of(engine).sender
    sender.stop()  # what a thread that died leaves behind: no thread running
    assert sender.join(DELIVERY_WAIT_S)
    sender._stopped = False
    with receiver(port) as notifier:
        skip_backoff(engine)  # wakes nobody: no thread; the next call starts one
        run_mad_plugin(engine, alert_batch("b", start_s=1_700_001_000), args_for(port))
        assert delivered_and_logged(engine, args_for(port))
    assert hosts_sent(notifier) == ["a", "b"]


def test_the_sender_never_calls_the_engine_api_from_its_own_thread():
    seen = []
    engine = make_engine()
    for name in ("info", "warn", "error", "query", "write", "write_to_db"):
        original = getattr(engine, name)

        def recording(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, threading.current_thread()))
            return _original(*args, **kwargs)

        setattr(engine, name, recording)
    with receiver() as notifier:
        notifier.script = [(503, None, 0, {}), OK_ANSWER]
        args = args_for(notifier.port, outbox_backoff="10ms")
        run_mad_plugin(engine, [alert_batch(h)[0] for h in "ab"], args)
        assert delivered_and_logged(engine, args)
    assert len(notifier.requests) == 3
    assert {name for name, _ in seen} >= {"info", "error", "write"}
    assert {thread for _, thread in seen} == {threading.main_thread()}


def test_a_burst_of_deliveries_is_listed_up_to_a_bound_and_counted_beyond():
    with receiver() as notifier:
        notifier.script = [OK_ANSWER]
        engine = make_engine()
        args = args_for(notifier.port)
        run_mad_plugin(engine, [alert_batch(f"h{n}")[0] for n in range(60)], args)
        assert delivered_and_logged(engine, args)
    assert len(notifier.requests) == 60
    sent = [line for line in engine.log_texts("INFO") if "alert sent to slack" in line]
    assert len(sent) == 50
    assert any(line.endswith("and 10 more alert(s) sent") for line in engine.log_texts("INFO"))
