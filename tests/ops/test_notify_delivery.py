"""The delivery state machine and its backoff, on a fake clock (no network, no broker)."""

from __future__ import annotations

import random

import pytest

from stream_mlops.ops.notify_delivery import (
    Backoff,
    DeliveryQueue,
    Failure,
    GiveUp,
    Retry,
    classify,
)

UNAVAILABLE = Failure("HTTP 503 Service Unavailable", retryable=True)


def queue(max_attempts: int = 4, jitter: float = 0.0) -> DeliveryQueue[str]:
    return DeliveryQueue(Backoff(1.0, 2.0, 8.0, jitter=jitter), max_attempts)


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.5, multiplier=3.0, max_s=20.0, jitter=0.0)
    assert backoff.schedule(6) == [0.5, 1.5, 4.5, 13.5, 20.0]
    # A huge attempt count neither overflows nor exceeds the cap.
    assert backoff.delay(5000, rand=0.0) == 20.0


def test_jitter_only_shortens_a_wait_and_by_at_most_its_fraction() -> None:
    backoff = Backoff(1.0, 2.0, 60.0, jitter=0.25)
    rng = random.Random(3)
    waits = [backoff.delay(3, rng.random()) for _ in range(2000)]
    assert all(3.0 < w <= 4.0 for w in waits)
    # Spread over the whole range, not one value: they do not retry in step.
    assert min(waits) < 3.1 and max(waits) > 3.9
    assert Backoff(1.0, 2.0, 60.0, jitter=1.0).delay(1, rand=0.999) < 0.01


def test_a_servers_retry_after_lengthens_the_wait_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 2.0, 30.0, jitter=0.5)
    assert backoff.delay(1, rand=0.5, retry_after_s=12.0) == 12.0
    assert backoff.delay(1, rand=0.5, retry_after_s=3600.0) == 30.0
    assert backoff.delay(5, rand=0.0, retry_after_s=1.0) == 16.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(None, True), (500, True), (502, True), (503, True), (408, True), (429, True)],
        *[(400, False), (401, False), (403, False), (404, False), (410, False), (301, False)],
    ],
)
def test_which_failures_are_retried(status: int | None, retryable: bool) -> None:
    failure = classify(status, f"HTTP {status}")
    assert failure is not None and failure.retryable is retryable
    assert classify(200, "HTTP 200") is None and classify(204, "HTTP 204") is None


def test_retries_follow_the_schedule_then_give_up_with_the_last_reason() -> None:
    q = queue(max_attempts=4)
    q.hold(("alerts", 0), 10, "a", ["hook"], now=100.0)
    now, waits = 100.0, []
    while True:
        (attempt,) = q.due(now)
        verdict = q.failed(attempt, UNAVAILABLE, now=now, rand=0.0)
        if isinstance(verdict, GiveUp):
            break
        assert isinstance(verdict, Retry)
        waits.append(verdict.delay_s)
        assert q.due(now + verdict.delay_s - 0.001) == []  # not a moment early
        assert q.next_due() == pytest.approx(now + verdict.delay_s)
        now += verdict.delay_s
    assert waits == [1.0, 2.0, 4.0]
    assert verdict.reason == "gave up after 4 attempts; last: HTTP 503 Service Unavailable"
    assert q.commit_offsets() == {("alerts", 0): 10}  # not settled before the dead letter
    q.settle(attempt)
    assert q.commit_offsets() == {("alerts", 0): 11}


def test_a_refusal_gives_up_at_once() -> None:
    q = queue()
    q.hold(("alerts", 0), 0, "a", ["hook"], now=0.0)
    (attempt,) = q.due(0.0)
    verdict = q.failed(attempt, Failure("HTTP 404 Not Found: no_service", False), now=0, rand=0)
    assert verdict == GiveUp("refused: HTTP 404 Not Found: no_service")


def test_the_commit_waits_for_the_slowest_webhook_while_the_others_go_on() -> None:
    q = queue()
    for offset in (0, 1, 2):
        q.hold(("alerts", 0), offset, f"n{offset}", ["down", "up"], now=0.0)
    # "up" delivers its whole queue, in order, while "down" fails its head.
    delivered = []
    for _ in range(3):
        heads = {a.webhook: a for a in q.due(0.0)}
        q.settle(heads["up"])
        delivered.append(heads["up"].held.item)
        if "down" in heads:
            q.failed(heads["down"], UNAVAILABLE, now=0.0, rand=0.0)
    assert delivered == ["n0", "n1", "n2"]
    assert q.commit_offsets() == {("alerts", 0): 0}
    assert q.unsettled() == 3
    # "down" recovers: its queue drains in order and the commit moves past all three.
    now, order = 1.0, []
    while q.due(now):
        (head,) = q.due(now)
        order.append(head.held.item)
        q.settle(head)
    assert order == ["n0", "n1", "n2"]
    assert q.commit_offsets() == {("alerts", 0): 3}
    assert q.unsettled() == 0


def test_partitions_commit_independently_and_unwanted_records_settle_at_once() -> None:
    q = queue()
    q.hold(("alerts", 0), 5, None, [], now=0.0)  # malformed or filtered out: nothing to send
    q.hold(("alerts", 1), 7, "x", ["hook"], now=0.0)
    q.hold(("updates", 0), 2, None, [], now=0.0)
    assert q.commit_offsets() == {("alerts", 0): 6, ("alerts", 1): 7, ("updates", 0): 3}
    assert q.next_offset(("alerts", 1)) == 8 and q.next_offset(("alerts", 2)) is None


def test_clear_forgets_everything_held() -> None:
    q = queue()
    q.hold(("alerts", 0), 5, "x", ["hook"], now=0.0)
    q.clear()
    assert q.due(0.0) == [] and q.commit_offsets() == {} and q.next_due() is None
