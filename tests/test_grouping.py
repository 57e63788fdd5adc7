"""Grouping (issue 15): the alerts of one region go out as one notification.

``group_wait`` runs on the outbox's clock (wall clock); the tests move that clock forward instead
of sleeping (``pass_the_wait``), and the background sender sends the due group by itself.
"""

from __future__ import annotations

import time

from madcheck.config.settings import load_config
from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import Alert
from madcheck.plugin.delivery import wait_for_delivery
from madcheck.plugin.writes import STATE_KEY
from madcheck.route.grouping import Grouper, render_group
from tests.support import DELIVERY_WAIT_S, make_engine, receiver, rows, run_and_settle
from tests.test_alert_history import history, tags_of
from tests.test_plugin_writes import BASE, HOOK, args_for

TABLES = {"cpu": {"tags": ["host", "region"], "fields": ["temp"]}}
DISCORD = "https://discord.test/api/webhooks/1/critical"


def storm(series, values=(*BASE, 100, 100), start_s=1_700_000_000):
    """One batch: every (host, region) with the same values."""
    return [
        {
            "table_name": "cpu",
            "rows": [
                row
                for host, region in series
                for row in rows("cpu", list(values), start_s=start_s, host=host, region=region)[
                    "rows"
                ]
            ],
        }
    ]


def group_args(port, **extra):
    return args_for(port, group_by="region", group_wait="1h", **extra)


def pass_the_wait(engine, seconds=7200.0):
    """Move the trigger's outbox clock past every wait and let the sender deliver."""
    state = engine.cache.get(STATE_KEY)
    state.outbox.clock = lambda: time.monotonic() + seconds
    state.sender.ensure_running(wake=True)
    assert wait_for_delivery(engine, DELIVERY_WAIT_S)


def member(host: str, value: float = 100.0, severity: str = "warning") -> Alert:
    return Alert(
        table="cpu",
        field="temp",
        tags=(("host", host), ("region", "eu")),
        threshold=Threshold("temp", 3.0, 9, count=2, severity=severity),
        value=value,
        median=11.0,
        mad=1.0,
        time_ns=1_700_000_100 * 10**9,
    )


# -- the stage -------------------------------------------------------------------------------


def test_the_series_list_is_the_longest_that_fits_then_and_n_more():
    grouper = Grouper(("region",), 30.0, clock=lambda: 0.0)
    group = grouper.restart(member("web000"))
    for i in range(1, 200):
        assert grouper.open_for(member(f"web{i:03d}")) is group
        group.add(member(f"web{i:03d}"))
    text = render_group("$count in $group: $series", group, 2000)
    assert len(text) <= 2000 and text.startswith("200 in region=eu: host=web000,region=eu (100)")
    shown = text.count("(100)")
    assert 10 < shown < 200 and text.endswith(f" and {200 - shown} more")
    everything = render_group("$series", group, 40_000)
    assert everything.count("(100)") == 200 and "more" not in everything


def test_alerts_after_the_wait_open_a_new_group():
    now = [0.0]
    grouper = Grouper(("region",), 30.0, clock=lambda: now[0])
    assert grouper.open_for(member("a")) is None
    first = grouper.restart(member("a"))
    now[0] = 29.0
    assert grouper.open_for(member("b")) is first
    now[0] = 31.0
    assert grouper.open_for(member("c")) is None  # the wait is over: c opens the next group
    assert grouper.restart(member("c")).count == 1


def test_group_wait_defaults_to_30s_with_group_by():
    config = load_config({**args_for(1), "group_by": "region.dc"}, {}).config
    assert config.noise.group_by == ("region", "dc") and config.noise.group_wait_s == 30.0
    assert load_config(args_for(1), {}).config.noise.group_by == ()


# -- through the plugin ----------------------------------------------------------------------


def test_one_notification_per_region_with_the_structured_list():
    series = [("a", "eu"), ("b", "eu"), ("c", "eu"), ("d", "us"), ("e", "us")]
    with receiver() as notifier:
        engine = make_engine(TABLES)
        run_and_settle(engine, storm(series), group_args(notifier.port))
        assert notifier.requests == []  # the groups wait
        pass_the_wait(engine)
    by_region = {r.body["alert"]["group"]["region"]: r.body for r in notifier.requests}
    assert sorted(by_region) == ["eu", "us"]
    eu = by_region["eu"]
    assert eu["notification_text"] == (
        "MAD alert: 3 series of cpu.temp outside their band (region=eu): "
        "host=a,region=eu (100), host=b,region=eu (100), host=c,region=eu (100)"
    )
    assert eu["alert"]["count"] == 3 and eu["alert"]["severity"] == "warning"
    assert [a["tags"]["host"] for a in eu["alert"]["alerts"]] == ["a", "b", "c"]
    assert set(eu["senders_config"]) == {"slack"}
    # every member is in the history as sent
    assert sorted(tags_of(w.line)["state"] for w in history(engine)) == ["firing"] * 5


def test_alerts_of_later_calls_within_the_wait_join_the_group_and_later_ones_start_anew():
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = group_args(notifier.port)
        run_and_settle(engine, storm([("a", "eu")]), args)
        run_and_settle(engine, storm([("b", "eu")]), args)
        pass_the_wait(engine)
        assert [r.body["alert"]["count"] for r in notifier.requests] == [2]
        run_and_settle(engine, storm([("c", "eu")]), args)
        pass_the_wait(engine, seconds=20_000.0)
    assert [r.body["alert"]["count"] for r in notifier.requests] == [2, 1]
    assert "host=c" in notifier.requests[1].body["notification_text"]


def test_a_group_has_its_highest_level_and_that_levels_route():
    # host a crosses the critical condition too (count 2), host b only the warning (count 1)
    series = [("a", "eu")]
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = group_args(
            notifier.port,
            mad_thresholds="temp:3:9:1@temp:3:9:2:critical",
            senders_critical="discord",
            discord_webhook_url=DISCORD,
            notification_group_text="[$severity] $count: $series",
        )
        run_and_settle(engine, storm(series) + storm([("b", "eu")], values=(*BASE, 100)), args)
        pass_the_wait(engine)
    (request,) = notifier.requests
    assert request.body["alert"]["severity"] == "critical"
    assert set(request.body["senders_config"]) == {"discord"}
    assert request.body["notification_text"].startswith("[critical] ")
    assert HOOK not in str(request.body["senders_config"])


def test_recoveries_are_not_grouped():
    values = (*BASE, 100, 100, 11, 11, 11)
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = group_args(notifier.port, notify_recovery="true")
        run_and_settle(engine, storm([("a", "eu"), ("b", "eu")], values=values), args)
        recoveries = [r.body["alert"]["state"] for r in notifier.requests]
        pass_the_wait(engine)
    assert recoveries == ["resolved", "resolved"]  # at once, one each
    assert notifier.requests[-1].body["alert"]["count"] == 2


# -- the outbox side: a waiting message takes members until it is due, then never again --------


def test_a_waiting_message_takes_members_until_due_and_is_written_once():
    from madcheck.notify.outbox import Outbox, PendingAlert
    from madcheck.notify.retry import Delivery

    now = [0.0]
    outbox = Outbox(clock=lambda: now[0])
    members: list[str] = []
    completed: list[int] = []

    def complete(item):
        completed.append(len(members))
        item.text = ", ".join(members)

    item = PendingAlert("", {}, ("http",), "group", not_before=10.0, complete=complete)
    outbox.add(item)
    assert outbox.amend(item, lambda: members.append("a"))
    sent: list[str] = []

    def send(pending):
        sent.append(pending.text)
        return Delivery(ok=True, attempts=1, reason="HTTP 200", status=200, answer={})

    outbox.deliver(send)
    assert sent == []  # not due yet
    assert outbox.amend(item, lambda: members.append("b"))
    now[0] = 10.0
    assert not outbox.amend(item, lambda: members.append("late"))  # due: a new message
    outbox.deliver(send)
    assert sent == ["a, b"] and completed == [2] and members == ["a", "b"]
