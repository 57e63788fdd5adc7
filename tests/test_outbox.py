"""The outbox on its own: order, backoff, narrowing, bounds and budget, on a fake clock."""

from madcheck.notify.outbox import Outbox, PendingAlert, failed_senders
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

    def __init__(self, clock: FakeClock, answers: list[Delivery], cost: float = 0.0) -> None:
        self.clock = clock
        self.answers = answers
        self.cost = cost
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, item: PendingAlert, seconds_left: float) -> Delivery:
        if seconds_left <= 0:
            return Delivery(False, 0, "not attempted")
        self.sent.append((item.text, item.senders))
        self.clock.now += self.cost
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def alert(text: str, senders: tuple[str, ...] = ("slack",)) -> PendingAlert:
    return PendingAlert(text=text, context={}, senders=senders, summary=f"summary {text}")


def test_alerts_go_oldest_first_and_a_delivered_one_is_never_sent_again():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    for name in "abc":
        outbox.add(alert(name))
    notifier = Notifier(clock, [OK])
    report = outbox.deliver(notifier, budget=2.0)
    assert [p.text for p in report.delivered] == ["a", "b", "c"]
    assert outbox.deliver(notifier, budget=2.0).delivered == []
    assert [text for text, _ in notifier.sent] == ["a", "b", "c"]


def test_unavailable_notifier_stops_the_pass_and_backs_off_doubling_up_to_the_cap():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, backoff_max=5.0, clock=clock)
    outbox.add(alert("a"))
    outbox.add(alert("b"))
    notifier = Notifier(clock, [DOWN])
    waits = []
    for _ in range(5):
        report = outbox.deliver(notifier, budget=2.0)
        assert report.unavailable == "connection failed after 3 attempts"
        assert report.waiting == 2
        waits.append(report.retry_in)
        # before the pause is over, a call does not contact the notifier at all
        clock.now += report.retry_in - 0.01
        deferred = outbox.deliver(notifier, budget=2.0)
        assert deferred.deferred and deferred.waiting == 2
        clock.now += 0.01
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [text for text, _ in notifier.sent] == ["a"] * 5  # one try per pass, head first
    notifier.answers = [OK]
    report = outbox.deliver(notifier, budget=2.0)
    assert [p.text for p in report.delivered] == ["a", "b"] and len(outbox) == 0
    assert report.delivered[0].tries == 5


def test_after_recovery_the_backoff_starts_small_again():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, backoff_max=30.0, clock=clock)
    notifier = Notifier(clock, [DOWN, DOWN, OK, DOWN])
    outbox.add(alert("a"))
    assert outbox.deliver(notifier, 2.0).retry_in == 1.0
    clock.now += 1.0
    assert outbox.deliver(notifier, 2.0).retry_in == 2.0
    clock.now += 2.0
    assert len(outbox.deliver(notifier, 2.0).delivered) == 1
    outbox.add(alert("b"))
    assert outbox.deliver(notifier, 2.0).retry_in == 1.0


def test_only_the_failed_senders_are_tried_again_and_the_pass_goes_on():
    clock = FakeClock()
    outbox = Outbox(backoff=1.0, clock=clock)
    partial = Delivery(
        False,
        1,
        "HTTP 502",
        502,
        {
            "status": "partial",
            "results": {"slack": {"ok": True, "reason": "HTTP 200"}, "sms": {"ok": False}},
        },
    )
    notifier = Notifier(clock, [partial, OK, OK])
    outbox.add(alert("a", ("slack", "sms")))
    outbox.add(alert("b", ("slack", "sms")))
    report = outbox.deliver(notifier, 2.0)
    assert [(p.text, failed) for p, failed in report.partial] == [("a", {"sms": "failed"})]
    assert [p.text for p in report.delivered] == ["b"]
    assert outbox.deliver(notifier, 2.0).delivered == []  # "a" waits its own backoff
    clock.now += 1.0
    assert [p.text for p in outbox.deliver(notifier, 2.0).delivered] == ["a"]
    assert notifier.sent == [("a", ("slack", "sms")), ("b", ("slack", "sms")), ("a", ("sms",))]


def test_a_request_the_notifier_calls_malformed_is_dropped_not_retried():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    outbox.add(alert("a"))
    outbox.add(alert("b"))
    bad = Delivery(False, 1, "HTTP 400", 400, {"status": "failed", "error": "x", "results": {}})
    notifier = Notifier(clock, [bad, OK])
    report = outbox.deliver(notifier, 2.0)
    assert [(p.text, reason) for p, reason in report.rejected] == [("a", "HTTP 400")]
    assert [p.text for p in report.delivered] == ["b"] and len(outbox) == 0


def test_a_full_outbox_drops_the_oldest_and_counts_them():
    outbox = Outbox(capacity=3, clock=FakeClock())
    dropped = [outbox.add(alert(str(i))) for i in range(5)]
    assert dropped == [0, 0, 0, 1, 1] and outbox.dropped_total == 2
    assert outbox.configure(capacity=1, backoff=1.0, backoff_max=30.0) == 2
    notifier = Notifier(FakeClock(), [OK])
    assert [p.text for p in outbox.deliver(notifier, 2.0).delivered] == ["4"]


def test_the_budget_ends_the_pass_and_the_rest_waits_for_the_next_call():
    clock = FakeClock()
    outbox = Outbox(clock=clock)
    for name in "abcde":
        outbox.add(alert(name))
    notifier = Notifier(clock, [OK], cost=0.8)  # each exchange takes 0.8 s
    first = outbox.deliver(notifier, budget=2.0)
    assert [p.text for p in first.delivered] == ["a", "b", "c"]
    assert first.out_of_time and first.waiting == 2 and first.retry_in is None
    second = outbox.deliver(notifier, budget=2.0)
    assert [p.text for p in second.delivered] == ["d", "e"] and not second.out_of_time


def test_senders_removed_from_the_config_leave_the_waiting_alerts():
    outbox = Outbox(clock=FakeClock())
    outbox.add(alert("a", ("slack", "sms")))
    outbox.add(alert("b", ("sms",)))
    orphans = outbox.keep_senders(["slack"])
    assert [p.text for p in orphans] == ["b"]
    notifier = Notifier(FakeClock(), [OK])
    outbox.deliver(notifier, 2.0)
    assert notifier.sent == [("a", ("slack",))]


def test_failed_senders_reads_the_notifier_contract():
    assert failed_senders(None, ["slack"]) is None
    assert failed_senders({"results": {}}, ["slack"]) is None  # a config error, not a partial
    answer = {"results": {"slack": {"ok": True}, "sms": {"ok": False, "reason": "HTTP 401"}}}
    assert failed_senders(answer, ["slack", "sms"]) == {"sms": "HTTP 401"}
    assert failed_senders(answer, ["slack", "discord"]) == {"discord": "no result"}
    assert failed_senders({"results": {"slack": {"ok": "yes"}}}, ["slack"]) == {"slack": "failed"}
