"""The outbox on its own: order, backoff, narrowing, Retry-After and bounds, on a fake clock."""

import threading

from madcheck.notify.outbox import MAX_RETRY_AFTER_S, Outbox, PendingAlert, failed_senders
from madcheck.notify.retry import Delivery

OK = Delivery(True, 1, "HTTP 200", 200, {"status": "ok", "results": {}})
DOWN = Delivery(False, 3, "connection failed after 3 attempts")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Notifier:
    """Records what it was sent and answers from a list (the last answer repeats)."""

    def __init__(self, clock: FakeClock, answers: list[Delivery]) -> None:
        self.clock = clock
        self.answers = answers
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, item: PendingAlert) -> Delivery:
        self.sent.append((item.text, item.senders))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def alert(text: str, senders: tuple[str, ...] = ("slack",)) -> PendingAlert:
    return PendingAlert(text=text, context={}, senders=senders, summary=f"summary {text}")


def partial_answer(**results: dict) -> Delivery:
    return Delivery(False, 1, "HTTP 502", 502, {"status": "partial", "results": results})


def test_alerts_go_oldest_first_and_a_delivered_one_is_never_sent_again():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    for name in "abc":
        outbox.add(alert(name))
    notifier = Notifier(clock, [OK])
    report = outbox.deliver(notifier)
    assert [p.text for p in report.delivered] == ["a", "b", "c"]
    assert outbox.deliver(notifier).delivered == []
    assert [text for text, _ in notifier.sent] == ["a", "b", "c"]
    assert outbox.seconds_until_due() is None


def test_unavailable_notifier_stops_the_pass_and_backs_off_doubling_up_to_the_cap():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, backoff_max=5.0, clock=clock)
    outbox.add(alert("a"))
    outbox.add(alert("b"))
    notifier = Notifier(clock, [DOWN])
    waits = []
    for _ in range(5):
        report = outbox.deliver(notifier)
        assert report.unavailable == "connection failed after 3 attempts"
        assert len(outbox) == 2 and outbox.backing_off
        waits.append(outbox.retry_in())
        assert outbox.seconds_until_due() == waits[-1]
        # before the pause is over, a pass does not contact the notifier at all
        clock.now += waits[-1] - 0.01
        assert outbox.deliver(notifier).unavailable is None
        clock.now += 0.01
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [text for text, _ in notifier.sent] == ["a"] * 5  # one try per pass, head first
    notifier.answers = [OK]
    report = outbox.deliver(notifier)
    assert [p.text for p in report.delivered] == ["a", "b"] and len(outbox) == 0
    assert report.delivered[0].tries == 5


def test_after_recovery_the_backoff_starts_small_again():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, backoff_max=30.0, clock=clock)
    notifier = Notifier(clock, [DOWN, DOWN, OK, DOWN])
    outbox.add(alert("a"))
    outbox.deliver(notifier)
    assert outbox.retry_in() == 1.0
    clock.now += 1.0
    outbox.deliver(notifier)
    assert outbox.retry_in() == 2.0
    clock.now += 2.0
    assert len(outbox.deliver(notifier).delivered) == 1 and not outbox.backing_off
    outbox.add(alert("b"))
    outbox.deliver(notifier)
    assert outbox.retry_in() == 1.0


def test_a_notifier_retry_after_longer_than_the_backoff_is_honoured():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, clock=clock)
    outbox.add(alert("a"))
    limited = Delivery(False, 1, "HTTP 429", 429, None, True, retry_after=12.0)
    outbox.deliver(Notifier(clock, [limited]))
    assert outbox.retry_in() == 12.0
    clock.now += 11.9
    assert outbox.deliver(Notifier(clock, [OK])).delivered == []


def test_only_the_failed_senders_are_tried_again_and_the_pass_goes_on():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, clock=clock)
    partial = partial_answer(slack={"ok": True, "reason": "HTTP 200"}, sms={"ok": False})
    notifier = Notifier(clock, [partial, OK, OK])
    outbox.add(alert("a", ("slack", "sms")))
    outbox.add(alert("b", ("slack", "sms")))
    report = outbox.deliver(notifier)
    assert [(p.text, failed) for p, failed in report.partial] == [("a", {"sms": "failed"})]
    assert [p.text for p in report.delivered] == ["b"]
    assert outbox.deliver(notifier).delivered == []  # "a" waits its own backoff
    assert outbox.seconds_until_due() == 1.0
    clock.now += 1.0
    assert [p.text for p in outbox.deliver(notifier).delivered] == ["a"]
    assert notifier.sent == [("a", ("slack", "sms")), ("b", ("slack", "sms")), ("a", ("sms",))]


def test_a_channel_retry_after_delays_that_alert_only_and_is_bounded():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, clock=clock)
    limited = partial_answer(
        slack={"ok": True, "reason": "HTTP 200"},
        discord={"ok": False, "reason": "HTTP 429", "retry_after": 20},
    )
    outbox.add(alert("a", ("slack", "discord")))
    outbox.deliver(Notifier(clock, [limited]))
    assert outbox.seconds_until_due() == 20.0 and not outbox.backing_off
    # a stranger's answer cannot park an alert for a year, nor break the outbox with junk
    absurd = partial_answer(discord={"ok": False, "retry_after": 3e7})
    clock.now += 20.0
    outbox.deliver(Notifier(clock, [absurd]))
    assert outbox.seconds_until_due() == MAX_RETRY_AFTER_S
    junk = partial_answer(discord={"ok": False, "retry_after": "soon"})
    clock.now += MAX_RETRY_AFTER_S
    outbox.deliver(Notifier(clock, [junk]))
    assert outbox.seconds_until_due() == outbox.delay(3)


def test_a_request_the_notifier_calls_malformed_is_dropped_not_retried():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    outbox.add(alert("a"))
    outbox.add(alert("b"))
    bad = Delivery(False, 1, "HTTP 400", 400, {"status": "failed", "error": "x", "results": {}})
    notifier = Notifier(clock, [bad, OK])
    report = outbox.deliver(notifier)
    assert [(p.text, reason) for p, reason in report.rejected] == [("a", "HTTP 400")]
    assert [p.text for p in report.delivered] == ["b"] and len(outbox) == 0


def test_a_full_outbox_drops_the_oldest_and_counts_them():
    outbox = Outbox(capacity=3, clock=FakeClock())
    dropped = [outbox.add(alert(str(i))) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1] and outbox.dropped_total == 2
    assert outbox.configure(capacity=1, backoff=1.0, backoff_max=30.0) == 2
    notifier = Notifier(FakeClock(), [OK])
    assert [p.text for p in outbox.deliver(notifier).delivered] == ["4"]


def test_alerts_added_while_a_request_is_on_its_way_wait_for_the_next_pass():
    clock = FakeClock()
    outbox = Outbox(capacity=2, clock=clock)
    outbox.add(alert("a"))
    added = threading.Event()

    def slow_notifier(item: PendingAlert) -> Delivery:
        # another thread (a call) adds while the send runs: the queue's lock is free
        thread = threading.Thread(target=lambda: (outbox.add(alert("b")), outbox.add(alert("c"))))
        thread.start()
        thread.join(5)
        added.set()
        return OK

    report = outbox.deliver(slow_notifier)
    assert added.is_set()
    # "a" was dropped by the full outbox while on its way: reported delivered, not re-queued
    assert [p.text for p in report.delivered] == ["a"]
    assert [p.text for p in outbox.deliver(Notifier(clock, [OK])).delivered] == ["b", "c"]


def test_a_pass_stops_when_asked_between_alerts():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    for name in "abc":
        outbox.add(alert(name))
    notifier = Notifier(clock, [OK])
    report = outbox.deliver(notifier, keep_going=lambda: len(notifier.sent) < 1)
    assert [p.text for p in report.delivered] == ["a"] and len(outbox) == 2


def test_senders_removed_from_the_config_leave_the_waiting_alerts():
    outbox = Outbox(clock=FakeClock())
    outbox.add(alert("a", ("slack", "sms")))
    outbox.add(alert("b", ("sms",)))
    orphans = outbox.keep_senders(["slack"])
    assert [p.text for p in orphans] == ["b"]
    notifier = Notifier(FakeClock(), [OK])
    outbox.deliver(notifier)
    assert notifier.sent == [("a", ("slack",))]


def test_failed_senders_reads_the_notifier_contract():
    assert failed_senders(None, ["slack"]) is None
    assert failed_senders({"results": {}}, ["slack"]) is None  # a config error, not a partial
    answer = {"results": {"slack": {"ok": True}, "sms": {"ok": False, "reason": "HTTP 401"}}}
    assert failed_senders(answer, ["slack", "sms"]) == {"sms": "HTTP 401"}
    assert failed_senders(answer, ["slack", "discord"]) == {"discord": "no result"}
    assert failed_senders({"results": {"slack": {"ok": "yes"}}}, ["slack"]) == {"slack": "failed"}
