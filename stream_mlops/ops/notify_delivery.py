"""The notifier's delivery state machine: pure, driven by the caller's clock.

Every record the notifier reads is *held* until it is *settled*: delivered to
every webhook that wants it, or given up on (dead-lettered) for the ones that
refused it or kept failing. A partition's offset may be committed up to its
first record that is not settled, never past it: that is what makes the
notifier at-least-once (a crash loses nothing that was not settled, and
repeats only what was delivered but not yet committed).

Each webhook has its own queue, in offset order per partition, and sends one
request at a time: its head. A failure that may pass (no response, 408, 425,
429, 5xx) is retried after a backoff (``Backoff``: exponential, capped,
jittered, at least the server's Retry-After); one that will not (any other
4xx, a redirect) or the ``max_attempts``-th failure gives up. A failing
webhook holds up only its own queue: the others keep delivering, while the
commit waits for the failing one to settle.

>>> queue: DeliveryQueue[str] = DeliveryQueue(Backoff(1.0, 2.0, 60.0, jitter=0.0), max_attempts=2)
>>> queue.hold(("alerts", 0), 7, "n7", ["oncall"], now=0.0)
>>> [a.webhook for a in queue.due(now=0.0)]
['oncall']
>>> head = queue.due(now=0.0)[0]
>>> queue.failed(head, Failure("HTTP 503", retryable=True), now=0.0, rand=0.5)
Retry(delay_s=1.0)
>>> queue.due(now=0.5), queue.commit_offsets()     # offset 7 waits: commit stays at it
([], {('alerts', 0): 7})
>>> queue.failed(head, Failure("HTTP 503", retryable=True), now=1.0, rand=0.5)
GiveUp(reason='gave up after 2 attempts; last: HTTP 503')
>>> queue.settle(head)
>>> queue.commit_offsets()
{('alerts', 0): 8}
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

__all__ = [
    "Attempt",
    "Backoff",
    "DeliveryQueue",
    "Failure",
    "GiveUp",
    "Held",
    "Retry",
    "classify",
]

PartitionKey = tuple[str, int]
#: what the caller holds per record (the notifier: the record and its notification)
T = TypeVar("T")

# Statuses that say "not now" rather than "never": request timeout, too early,
# too many requests. Every 5xx is retried as well.
RETRYABLE_4XX: Final = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Failure:
    """Why one attempt did not deliver, and whether another may."""

    reason: str
    retryable: bool
    #: the server's Retry-After, seconds
    retry_after_s: float | None = None


def classify(status: int | None, detail: str, retry_after_s: float | None = None) -> Failure | None:
    """None for a delivery (2xx), else the failure.

    >>> classify(204, "HTTP 204") is None
    True
    >>> classify(None, "no response within 10 s").retryable, classify(503, "HTTP 503").retryable
    (True, True)
    >>> classify(429, "HTTP 429", 30.0)
    Failure(reason='HTTP 429', retryable=True, retry_after_s=30.0)
    >>> classify(404, "HTTP 404 Not Found: no_service").retryable
    False
    >>> classify(302, "HTTP 302 Found").reason
    'HTTP 302 Found (redirects are not followed)'
    """
    if status is None:
        return Failure(detail, retryable=True)
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return Failure(f"{detail} (redirects are not followed)", retryable=False)
    retryable = status >= 500 or status in RETRYABLE_4XX
    return Failure(detail, retryable=retryable, retry_after_s=retry_after_s if retryable else None)


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: exponential from ``initial_s``, capped at ``max_s``.

    ``jitter`` shortens each wait by a random fraction up to itself, so that
    notifiers (or webhooks) failing together do not retry in step.

    >>> b = Backoff(initial_s=1.0, multiplier=2.0, max_s=10.0, jitter=0.0)
    >>> [b.delay(n, rand=0.0) for n in range(1, 7)]
    [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    >>> Backoff(1.0, 2.0, 10.0, jitter=0.5).delay(3, rand=1.0)
    2.0
    """

    initial_s: float
    multiplier: float
    max_s: float
    jitter: float = 0.5

    def delay(self, failures: int, rand: float, retry_after_s: float | None = None) -> float:
        """The wait after the ``failures``-th failure in a row; ``rand`` in [0, 1).

        A server's Retry-After lengthens it, up to ``max_s`` (a longer one is
        not waited for: the attempts run out instead).
        """
        try:
            base = self.initial_s * self.multiplier ** (failures - 1)
        except OverflowError:
            base = math.inf
        wait = min(self.max_s, base) * (1.0 - self.jitter * rand)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_s))
        return wait

    def schedule(self, attempts: int) -> list[float]:
        """The waits between ``attempts`` attempts, without jitter (for the docs).

        >>> Backoff(1.0, 2.0, 60.0).schedule(8)
        [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
        """
        return [self.delay(n, rand=0.0) for n in range(1, attempts)]


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(eq=False)
class Held(Generic[T]):
    """A record from its read until it is settled for every webhook."""

    partition: PartitionKey
    offset: int
    #: what the caller keeps with it (None: nothing to deliver)
    item: T | None
    #: webhooks it still waits for
    waiting: set[Hashable]


@dataclass(eq=False)
class Attempt(Generic[T]):
    """One record on its way to one webhook."""

    held: Held[T]
    webhook: Hashable
    failures: int = 0
    not_before: float = 0.0
    last_reason: str = ""


@dataclass
class DeliveryQueue(Generic[T]):
    """Held records per partition, attempts per webhook, and the offsets safe to commit."""

    backoff: Backoff
    max_attempts: int
    _partitions: dict[PartitionKey, deque[Held[T]]] = field(default_factory=dict)
    _next: dict[PartitionKey, int] = field(default_factory=dict)
    _webhooks: dict[Hashable, deque[Attempt[T]]] = field(default_factory=dict)

    def next_offset(self, partition: PartitionKey) -> int | None:
        """The offset after the last one held here for ``partition`` (None: none yet)."""
        return self._next.get(partition)

    def hold(
        self,
        partition: PartitionKey,
        offset: int,
        item: T | None,
        webhooks: Iterable[Hashable],
        *,
        now: float,
    ) -> None:
        """Hold a record until each of ``webhooks`` settles it (none: settled now)."""
        held: Held[T] = Held(partition, offset, item, set(webhooks))
        self._partitions.setdefault(partition, deque()).append(held)
        self._next[partition] = offset + 1
        for webhook in held.waiting:
            self._webhooks.setdefault(webhook, deque()).append(Attempt(held, webhook, 0, now))

    def due(self, now: float) -> list[Attempt[T]]:
        """The attempts to make now: each webhook's head, if its wait is over."""
        return [q[0] for q in self._webhooks.values() if q and q[0].not_before <= now]

    def next_due(self) -> float | None:
        """When the earliest head is due (None: nothing to send)."""
        heads = [q[0].not_before for q in self._webhooks.values() if q]
        return min(heads) if heads else None

    def failed(
        self, attempt: Attempt[T], failure: Failure, *, now: float, rand: float
    ) -> Retry | GiveUp:
        """Count a failed attempt: when to retry, or give up (then ``settle`` it once
        the dead letter is written)."""
        attempt.failures += 1
        attempt.last_reason = failure.reason
        if not failure.retryable:
            return GiveUp(f"refused: {failure.reason}")
        if attempt.failures >= self.max_attempts:
            return GiveUp(f"gave up after {attempt.failures} attempts; last: {failure.reason}")
        delay = self.backoff.delay(attempt.failures, rand, failure.retry_after_s)
        attempt.not_before = now + delay
        return Retry(delay)

    def settle(self, attempt: Attempt[T]) -> None:
        """The webhook is done with this record (delivered, or dead-lettered)."""
        queue = self._webhooks[attempt.webhook]
        if queue and queue[0] is attempt:
            queue.popleft()
        else:
            queue.remove(attempt)
        attempt.held.waiting.discard(attempt.webhook)

    def commit_offsets(self) -> dict[PartitionKey, int]:
        """Per partition, the offset to commit: its first unsettled record, or
        the next offset when every record held is settled."""
        offsets = {}
        for partition, held in self._partitions.items():
            while held and not held[0].waiting:
                held.popleft()
            offsets[partition] = held[0].offset if held else self._next[partition]
        return offsets

    def unsettled(self) -> int:
        """Records held that some webhook still waits for."""
        return sum(1 for held in self._partitions.values() for h in held if h.waiting)

    def clear(self) -> None:
        """Forget everything (the assignment changed: the next owner reads it again)."""
        self._partitions.clear()
        self._next.clear()
        self._webhooks.clear()
