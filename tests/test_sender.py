"""The background sender on its own: it delivers without being called again, survives a
failing pass, and ends when its owner goes away or it is stopped."""

from __future__ import annotations

import gc

from madcheck.notify.outbox import Outbox, PendingAlert
from madcheck.notify.retry import Delivery
from madcheck.notify.sender import OutboxSender

OK = Delivery(True, 1, "HTTP 200", 200, {"status": "ok", "results": {}})
WAIT_S = 20.0


class Owner:
    """Stands for the trigger's state: the sender asks it for a send function at each pass."""

    def __init__(self, answers: list[Delivery | Exception]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    def send(self, item: PendingAlert) -> Delivery:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        self.sent.append(item.text)
        return answer


def alert(text: str) -> PendingAlert:
    return PendingAlert(text=text, context={}, senders=("slack",), summary=text)


def sender_for(owner: Owner, outbox: Outbox, reports: list, crashes: list) -> OutboxSender:
    return OutboxSender(owner, outbox, lambda o: o.send, reports.append, crashes.append)


def drained(outbox: Outbox) -> bool:
    return not len(outbox)


def test_retries_after_a_failure_come_from_the_thread_alone():
    owner = Owner([Delivery(False, 1, "HTTP 503", 503), OK])
    outbox = Outbox(backoff=0.01, backoff_max=0.02)
    reports: list = []
    sender = sender_for(owner, outbox, reports, [])
    outbox.add(alert("a"))
    sender.ensure_running()
    assert sender.wait_until(drained, WAIT_S)
    assert owner.sent == ["a", "a"]  # the 503, then the retry: no call in between
    assert [r.unavailable for r in reports if r.unavailable] == ["HTTP 503"]
    sender.stop()
    assert sender.join(WAIT_S)


def test_a_pass_that_raises_is_reported_and_the_sender_goes_on():
    owner = Owner([RuntimeError("bug"), OK])
    outbox = Outbox(backoff=0.01)
    crashes: list = []
    sender = sender_for(owner, outbox, [], crashes)
    outbox.add(alert("a"))
    sender.ensure_running()
    assert sender.wait_until(drained, WAIT_S)
    assert crashes == ["RuntimeError: bug"] and owner.sent == ["a"]
    sender.stop()


def test_the_thread_ends_when_its_owner_is_gone():
    owner = Owner([OK])
    outbox = Outbox()
    sender = sender_for(owner, outbox, [], [])
    sender.ensure_running()
    assert sender.running
    del owner
    gc.collect()
    assert sender.join(WAIT_S)
    sender.ensure_running()  # a stopped sender is never started again
    assert not sender.running


def test_a_stopped_sender_sends_nothing_more():
    owner = Owner([OK])
    outbox = Outbox()
    sender = sender_for(owner, outbox, [], [])
    sender.stop()
    outbox.add(alert("a"))
    sender.ensure_running()
    assert not sender.running and owner.sent == [] and len(outbox) == 1
