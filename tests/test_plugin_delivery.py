"""No lost alert, no stalled write path: the plugin file against a loopback notifier that fails."""

from madcheck.engine.cache import TriggerCache
from madcheck.plugin.writes import STATE_KEY
from tests.support import free_port, make_engine, receiver, rows, run_mad_plugin

BASE = [10, 12, 11, 13, 9, 11, 12, 10, 11]
HOOK = "https://hooks.slack.test/services/T000/B000/DELIVERYSECRET"
DISCORD = "https://discord.test/api/webhooks/1/deliverysecret"
TOKEN = "apiv3_delivery_secret_token"
OK_ANSWER = (200, {"status": "ok", "results": {"slack": {"ok": True, "reason": "HTTP 200"}}}, 0, {})


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
        "outbox_backoff": "0",
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


def test_alerts_raised_during_an_outage_are_all_delivered_once_in_order_afterwards():
    port = free_port()
    engine = make_engine()
    for host in ["a", "b", "c"]:  # the notifier is down: connections are refused
        run_mad_plugin(engine, alert_batch(host), args_for(port))
    errors = engine.log_texts("ERROR")
    assert len(errors) == 3  # one line per call, not per alert
    assert "3 alert(s) waiting in the outbox" in errors[-1]
    with receiver(port) as notifier:
        notifier.script = [OK_ANSWER]
        run_mad_plugin(engine, quiet_batch(), args_for(port))
        run_mad_plugin(engine, quiet_batch(), args_for(port))
        run_mad_plugin(engine, alert_batch("d"), args_for(port))
    assert hosts_sent(notifier) == ["a", "b", "c", "d"]
    sent = [line for line in engine.log_texts("INFO") if "alert sent to slack" in line]
    assert len(sent) == 4 and "(after 3 failed tries)" in sent[0]


def test_notifier_answering_503_keeps_alerts_until_it_recovers():
    with receiver() as notifier:
        notifier.script = [(503, {"error": "starting"}, 0, {})] * 3 + [OK_ANSWER]
        engine = make_engine()
        run_mad_plugin(engine, alert_batch("a"), args_for(notifier.port))
        run_mad_plugin(engine, quiet_batch(), args_for(notifier.port))
        run_mad_plugin(engine, quiet_batch(), args_for(notifier.port))
        assert len(engine.cache.get(STATE_KEY).outbox) == 1
        run_mad_plugin(engine, quiet_batch(), args_for(notifier.port))
        run_mad_plugin(engine, quiet_batch(), args_for(notifier.port))
    assert len(notifier.requests) == 4 and len(engine.cache.get(STATE_KEY).outbox) == 0


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
            **{"notification_attempts": "3"},
        )
        run_mad_plugin(engine, alert_batch("a"), args)
        run_mad_plugin(engine, quiet_batch(), args)
        run_mad_plugin(engine, quiet_batch(), args)
    first, second = notifier.requests  # a partial answer is not retried with the same payload
    assert set(first.body["senders_config"]) == {"slack", "discord"}
    assert second.body["senders_config"] == {"discord": {"discord_webhook_url": DISCORD}}
    assert second.body["notification_text"] == first.body["notification_text"]
    (error,) = engine.log_texts("ERROR")
    assert "failed senders: discord (HTTP 500); only those will be retried" in error


def test_a_hanging_notifier_costs_one_budget_then_the_outbox_backs_off():
    with receiver() as notifier:
        notifier.script = [(200, {}, 2.0, {})]  # answers long after every timeout
        engine = make_engine()
        args = args_for(
            notifier.port,
            delivery_budget="200ms",
            notification_timeout="10s",
            notification_attempts="3",
            outbox_backoff="5s",
        )
        # five alerts in one call: only the first is tried, the budget is gone after it
        batch = [alert_batch(host)[0] for host in "abcde"]
        run_mad_plugin(engine, batch, args)
        assert len(notifier.requests) == 1
        (error,) = engine.log_texts("ERROR")
        assert "alert delivery failed (timed out" in error
        assert "5 alert(s) waiting in the outbox, next try in 5.0s" in error
        # the next calls, within the backoff, do not touch the notifier; a quiet one says
        # nothing, one that brings a new alert says it waits
        run_mad_plugin(engine, quiet_batch(), args)
        assert len(notifier.requests) == 1
        assert not any("notifier unavailable" in w for w in engine.log_texts("WARN"))
        run_mad_plugin(engine, alert_batch("f", start_s=1_700_001_000), args)
        assert len(notifier.requests) == 1
        (waiting,) = [w for w in engine.log_texts("WARN") if "notifier unavailable" in w]
        assert "1 new alert(s) wait: 6 alert(s) waiting in the outbox" in waiting
        # once the backoff has passed (on the outbox's clock), the notifier is tried again
        notifier.script = [OK_ANSWER]
        outbox = engine.cache.get(STATE_KEY).outbox
        base = outbox.clock()
        outbox.clock = lambda: base + 6.0
        run_mad_plugin(engine, quiet_batch(), args)
    assert hosts_sent(notifier)[1:] == list("abcdef")[: len(notifier.requests) - 1]
    assert len(notifier.requests) >= 2


def test_what_does_not_fit_the_budget_waits_for_the_next_call():
    with receiver() as notifier:
        notifier.script = [(200, OK_ANSWER[1], 0.15, {})]  # every answer takes 150 ms
        engine = make_engine()
        args = args_for(notifier.port, delivery_budget="350ms", notification_timeout="10s")
        batch = [alert_batch(host)[0] for host in "abcdef"]
        run_mad_plugin(engine, batch, args)
        first_call = len(notifier.requests)
        for _ in range(10):
            run_mad_plugin(engine, quiet_batch(), args)
            if not len(engine.cache.get(STATE_KEY).outbox):
                break
    assert first_call < 6
    delivered = [h for h in hosts_sent(notifier)]
    # a request cut by the budget may have reached the server: each host is sent at least once,
    # in order, and every delivered one (answered 200) only once
    assert sorted(set(delivered)) == list("abcdef")
    assert delivered == sorted(delivered)
    sent_lines = [line for line in engine.log_texts("INFO") if "alert sent to slack" in line]
    assert len(sent_lines) == 6


def test_a_full_outbox_drops_the_oldest_with_one_error_per_call():
    port = free_port()
    engine = make_engine()
    batch = [alert_batch(host)[0] for host in "abcd"]
    run_mad_plugin(engine, batch, args_for(port, outbox_size="2"))
    dropped = [e for e in engine.log_texts("ERROR") if "outbox full" in e]
    assert dropped == [dropped[0]] and "dropped the 2 oldest undelivered alert(s)" in dropped[0]
    with receiver(port) as notifier:
        run_mad_plugin(engine, quiet_batch(), args_for(port, outbox_size="2"))
    assert hosts_sent(notifier) == ["c", "d"]


def test_waiting_alerts_survive_a_config_change_and_use_the_new_settings():
    port = free_port()
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(port))
    new_hook = "https://hooks.slack.test/services/T000/B000/ROTATEDSECRET"
    with receiver(port) as notifier:
        run_mad_plugin(engine, quiet_batch(), args_for(port, slack_webhook_url=new_hook))
    (request,) = notifier.requests
    assert request.body["senders_config"] == {"slack": {"slack_webhook_url": new_hook}}


def test_alerts_for_a_sender_no_longer_configured_are_dropped_with_an_error_count():
    port = free_port()
    engine = make_engine()
    run_mad_plugin(engine, alert_batch("a"), args_for(port))
    args = args_for(port, senders="discord", discord_webhook_url=DISCORD)
    with receiver(port) as notifier:
        run_mad_plugin(engine, quiet_batch(), args)
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
        run_mad_plugin(engine, quiet_batch(), args_for(notifier.port))
        assert len(notifier.requests) == 1
    (error,) = engine.log_texts("ERROR")
    assert "rejected 1 alert(s) as malformed (HTTP 400)" in error


def test_a_restart_empties_the_outbox_like_the_rest_of_the_cache():
    """The cache is the engine's only state: documented, and visible here."""
    cache = TriggerCache()
    engine = make_engine(cache=cache)
    run_mad_plugin(engine, alert_batch("a"), args_for(free_port()))
    assert len(cache.get(STATE_KEY).outbox) == 1
    cache.clear()
    run_mad_plugin(engine, quiet_batch(), args_for(free_port()))
    assert len(cache.get(STATE_KEY).outbox) == 0
