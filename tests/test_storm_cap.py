"""The storm cap (issue 15): past ``max_notifications_per_minute``, one summary a minute.

The cap's minute runs on the outbox's clock; ``pass_the_wait`` moves it instead of sleeping.
"""

from __future__ import annotations

from madcheck.route.cap import StormCap
from tests.support import make_engine, receiver, run_and_settle
from tests.test_alert_history import history, tags_of
from tests.test_grouping import TABLES, pass_the_wait, storm
from tests.test_plugin_writes import args_for


def hosts(n, region="eu"):
    return [(f"h{i:02d}", region) for i in range(n)]


def test_the_cap_admits_its_limit_per_minute():
    now = [0.0]
    cap = StormCap(3, clock=lambda: now[0])
    assert [cap.admit() for _ in range(5)] == [True, True, True, False, False]
    now[0] = 59.9
    assert cap.admit() is False
    now[0] = 60.0
    assert [cap.admit() for _ in range(4)] == [True, True, True, False]


def test_alerts_past_the_cap_are_recorded_capped_and_summed_up_once():
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = args_for(notifier.port, max_notifications_per_minute="3")
        run_and_settle(engine, storm(hosts(10)), args)
        assert len(notifier.requests) == 3  # the summary waits for the minute's end
        warning = [t for t in engine.log_texts("WARN") if "storm cap" in t]
        pass_the_wait(engine, seconds=61.0)
    assert len(notifier.requests) == 4
    summary = notifier.requests[3].body
    assert summary["notification_text"].startswith(
        "MAD storm cap: 7 alert(s) on cpu held back this minute (max_notifications_per_minute=3"
    )
    assert summary["notification_text"].endswith(" and 2 more series")
    assert summary["alert"]["count"] == 7 and summary["alert"]["state"] == "capped"
    assert len(summary["alert"]["series"]) == 7
    states = sorted(tags_of(w.line)["state"] for w in history(engine))
    assert states == ["capped"] * 7 + ["firing"] * 3  # nothing is lost
    assert warning and "7 alert(s) held back" in warning[0]


def test_a_new_minute_lets_alerts_through_again():
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = args_for(notifier.port, max_notifications_per_minute="2")
        run_and_settle(engine, storm(hosts(3)), args)
        pass_the_wait(engine, seconds=61.0)  # summary of 1
        run_and_settle(engine, storm(hosts(2, "us"), start_s=1_700_000_200), args)
    texts = [r.body["notification_text"] for r in notifier.requests]
    assert len(texts) == 5 and texts[2].startswith("MAD storm cap: 1 alert(s)")
    assert all("region=us" in text for text in texts[3:])


def test_a_group_counts_as_one_notification():
    with receiver() as notifier:
        engine = make_engine(TABLES)
        args = args_for(
            notifier.port, group_by="region", group_wait="1h", max_notifications_per_minute="2"
        )
        series = hosts(4, "eu") + hosts(4, "us") + hosts(4, "ap")
        run_and_settle(engine, storm(series), args)
        pass_the_wait(engine)
    groups = [r.body["alert"] for r in notifier.requests if r.body["alert"].get("kind") == "group"]
    (summary,) = [
        r.body["alert"] for r in notifier.requests if r.body["alert"]["state"] == "capped"
    ]
    assert sorted(g["count"] for g in groups) == [4, 4]  # two regions' groups, the third capped
    assert summary["count"] == 4
