"""Publishing a simulator's stream to Kafka, paced to a rate.

Predictions go to the predictions topic and outcomes to the outcomes topic,
both keyed by ``event_id``: kafka-python's default partitioner is the Java
client's murmur2, so an event's prediction and outcome land on the same
partition number whenever the two topics have the same partition count
(the engine joins them per partition).

``Pacer`` is the pure part (clock and sleep are injected) so the rate is
testable without a broker or a real clock.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import kafka
import kafka.errors as kerrors
import structlog

from stream_mlops.simulate.stream import Emission

# How often a long run logs its progress.
PROGRESS_INTERVAL_S = 5.0
# A send waits this long for topic metadata before failing: enough for a
# broker that is still starting, short enough to report a missing topic soon.
MAX_BLOCK_MS = 30_000


class PublishError(Exception):
    """The stream could not be published (no broker, no topic, ...)."""


class Pacer:
    """Lets the n-th prediction go at ``start + n / rate``; rate 0 never waits.

    Pacing from the start (not from the previous send) keeps the average rate
    exact even when single sends are slow. Outcomes go at their event time,
    mapped to the wall clock by the pace the predictions set (event-time
    seconds per wall second, measured from the schedule): so the outcomes
    still pending after the last prediction trickle out as their labels
    arrive instead of in one burst.

    >>> now = [0.0]
    >>> pacer = Pacer(2.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for k in range(5):
    ...     pacer.wait(at=1000.0 + k)  # one prediction per event-time second
    >>> now[0]
    2.0
    >>> pacer.wait_outcome(at=1010.0)  # 6 event-time seconds after the last prediction
    >>> now[0]
    5.0
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, not {rate}")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._count = 0
        # (event time, scheduled wall time) of the first and the latest prediction
        self._origin: tuple[float, float] | None = None
        self._anchor: tuple[float, float] | None = None

    def wait(self, at: float | None = None) -> None:
        """Block until the next prediction (at event time ``at``) is due."""
        if self.rate == 0:
            return
        now = self._clock()
        if self._origin is None:
            self._origin = (at if at is not None else 0.0, now)
        due = self._origin[1] + self._count / self.rate
        if due > now:
            self._sleep(due - now)
        self._count += 1
        if at is not None:
            self._anchor = (at, due)

    def wait_outcome(self, at: float) -> None:
        """Block until an outcome published at event time ``at`` is due."""
        if self.rate == 0 or self._origin is None or self._anchor is None:
            return
        event_span = self._anchor[0] - self._origin[0]
        if event_span <= 0:
            return  # no pace measured yet (e.g. one day's forecasts share a time)
        wall_per_event_s = (self._anchor[1] - self._origin[1]) / event_span
        due = self._anchor[1] + (at - self._anchor[0]) * wall_per_event_s
        now = self._clock()
        if due > now:
            self._sleep(due - now)


@dataclass
class PublishStats:
    predictions: int = 0
    outcomes: int = 0
    malformed: int = 0
    #: from the start to the end of the flush (late outcomes included)
    seconds: float = 0.0
    #: from the start to the last prediction: what the rate is measured on
    prediction_seconds: float = 0.0
    defects: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        span = self.prediction_seconds
        rate = self.predictions / span if span > 0 else None
        return {
            "predictions": self.predictions,
            "outcomes": self.outcomes,
            "malformed": self.malformed,
            "seconds": round(self.seconds, 3),
            "predictions_per_s": round(rate, 1) if rate is not None else None,
        }


def open_producer(bootstrap_servers: str, *, client_id: str) -> Any:
    """An idempotent kafka-python producer (murmur2 default partitioner)."""
    try:
        return kafka.KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            # Explicit, so that no other setting can silently turn it off.
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_block_ms=MAX_BLOCK_MS,
        )
    except kerrors.KafkaError as exc:
        raise PublishError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc


def publish(
    emissions: Iterable[Emission],
    producer: Any,
    *,
    predictions_topic: str,
    outcomes_topic: str,
    pacer: Pacer,
    stop: threading.Event | None = None,
) -> PublishStats:
    """Send every emission in order, pacing predictions; flush at the end.

    Stops early (after flushing what was sent) when ``stop`` is set.
    """
    log = structlog.get_logger("stream_mlops.simulate")
    topics = {"prediction": predictions_topic, "outcome": outcomes_topic}
    stats = PublishStats()
    # Delivery errors surface on the send futures, on the client's IO thread:
    # collect them (list.append is atomic) and fail after the flush.
    failures: list[BaseException] = []
    started = time.monotonic()
    last_progress = started
    try:
        for emission in emissions:
            if stop is not None and stop.is_set():
                break
            if emission.kind == "prediction":
                pacer.wait(emission.at)
                stats.predictions += 1
                if emission.defect is not None:
                    stats.malformed += 1
                    kind = emission.defect.split(":", 1)[0]
                    stats.defects[kind] = stats.defects.get(kind, 0) + 1
            else:
                pacer.wait_outcome(emission.at)
                stats.outcomes += 1
            future = producer.send(
                topics[emission.kind], key=emission.key.encode(), value=emission.value()
            )
            future.add_errback(failures.append)
            now = time.monotonic()
            if emission.kind == "prediction":
                stats.prediction_seconds = now - started
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                stats.seconds = now - started
                log.info("simulate.progress", **stats.as_dict())
        producer.flush()
    except kerrors.KafkaTimeoutError as exc:
        raise PublishError(
            f"Kafka did not accept records within {MAX_BLOCK_MS} ms ({exc}); do the topics "
            f"{predictions_topic!r} and {outcomes_topic!r} exist? (stream-mlops topics create)"
        ) from exc
    except kerrors.KafkaError as exc:
        raise PublishError(f"publishing failed: {type(exc).__name__}: {exc}") from exc
    if failures:
        first = failures[0]
        raise PublishError(
            f"{len(failures)} records were not delivered; first: {type(first).__name__}: {first}"
        )
    stats.seconds = time.monotonic() - started
    return stats


def serve(
    emissions: Iterable[Emission],
    *,
    bootstrap_servers: str,
    predictions_topic: str,
    outcomes_topic: str,
    rate: float,
    client_id: str,
    context: dict[str, Any],
) -> int:
    """A simulated scoring service's life: connect, publish, report; the exit code.

    SIGTERM and Ctrl-C stop it cleanly: what was sent is flushed and counted.
    ``context`` (seed, scenario, ...) goes into the start and end log lines.
    """
    log = structlog.get_logger("stream_mlops.simulate").bind(**context)
    stop = threading.Event()
    previous = _on_sigterm(stop)
    try:
        producer = open_producer(bootstrap_servers, client_id=client_id)
    except PublishError as exc:
        log.error("simulate.failed", error=str(exc))
        _restore_sigterm(previous)
        return 1
    log.info(
        "simulate.started",
        bootstrap_servers=bootstrap_servers,
        predictions_topic=predictions_topic,
        outcomes_topic=outcomes_topic,
        rate=rate,
    )
    try:
        stats = publish(
            emissions,
            producer,
            predictions_topic=predictions_topic,
            outcomes_topic=outcomes_topic,
            # Waits end early on SIGTERM: a slow pace or a late outcome never delays a stop.
            pacer=Pacer(rate, sleep=lambda seconds: _wait(stop, seconds)),
            stop=stop,
        )
    except PublishError as exc:
        log.error("simulate.failed", error=str(exc))
        return 1
    except KeyboardInterrupt:
        log.warning("simulate.interrupted")
        return 130
    finally:
        producer.close(timeout=5)
        _restore_sigterm(previous)
    log.info(
        "simulate.finished", stopped_early=stop.is_set(), defects=stats.defects, **stats.as_dict()
    )
    return 0


def _wait(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)


def _on_sigterm(stop: threading.Event) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers can only be set from the main thread
    return signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
