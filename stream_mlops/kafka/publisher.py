"""Publishing a simulator's stream to Kafka, paced to a rate.

Predictions go to the predictions topic and outcomes to the outcomes topic,
both keyed by ``event_id``: the transport's producer partitions keys with the
Java client's murmur2 on either client library, so an event's prediction and
outcome land on the same partition number whenever the two topics have the
same partition count (the engine joins them per partition).

``Pacer`` is the pure part (clock and sleep are injected) so the rate is
testable without a broker or a real clock. ``add_kafka_arguments`` and
``kafka_from`` are the simulators' Kafka options: the cluster, the client
library and the topics, from ``--config`` and the command line.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from stream_mlops.config import KafkaSettings, load_settings
from stream_mlops.kafka.backends import BACKENDS, open_transport
from stream_mlops.kafka.bootstrap import connection_settings
from stream_mlops.kafka.transport import Producer, TransportError
from stream_mlops.simulate.stream import Emission

# How often a long run logs its progress.
PROGRESS_INTERVAL_S = 5.0
# The final flush waits this long: at rate 0 the client's buffer can hold about
# a hundred thousand small records, seconds of sending even on a busy machine.
FLUSH_TIMEOUT_S = 120.0


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


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulators' Kafka options (cluster, client library, topics)."""
    kafka = parser.add_argument_group("Kafka")
    kafka.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration file: its [kafka] cluster, client and topic names",
    )
    kafka.add_argument(
        "--bootstrap",
        default=None,
        help=(
            "bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else [kafka] "
            "bootstrap_servers in the config, else the local broker)"
        ),
    )
    kafka.add_argument(
        "--client",
        choices=BACKENDS,
        default=None,
        help="Kafka client library (default: [kafka] client in the config, else kafka-python)",
    )
    kafka.add_argument(
        "--predictions-topic",
        default=None,
        help="default: [kafka.topics] predictions in the config, else predictions",
    )
    kafka.add_argument(
        "--outcomes-topic",
        default=None,
        help="default: [kafka.topics] outcomes in the config, else outcomes",
    )


def kafka_from(args: argparse.Namespace) -> KafkaSettings:
    """The ``[kafka]`` settings the options describe; raises ``ConfigError`` for a bad config.

    ``--predictions-topic`` and ``--outcomes-topic`` override the config's topic names.
    """
    kafka = connection_settings(
        load_settings(args.config), bootstrap_servers=args.bootstrap, client=args.client
    )
    renamed = {
        name: value
        for name, value in (
            ("predictions", args.predictions_topic),
            ("outcomes", args.outcomes_topic),
        )
        if value
    }
    if not renamed:
        return kafka
    return kafka.model_copy(update={"topics": kafka.topics.model_copy(update=renamed)})


def publish(
    emissions: Iterable[Emission],
    producer: Producer,
    *,
    predictions_topic: str,
    outcomes_topic: str,
    pacer: Pacer,
    stop: threading.Event | None = None,
) -> PublishStats:
    """Send every emission in order, pacing predictions; flush at the end.

    Stops early (after flushing what was sent) when ``stop`` is set. Raises
    ``TransportError``: ``TopicNotFoundError`` for a missing topic,
    ``DeliveryFailedError`` when records were not delivered.
    """
    log = structlog.get_logger("stream_mlops.simulate")
    topics = {"prediction": predictions_topic, "outcome": outcomes_topic}
    stats = PublishStats()
    started = time.monotonic()
    last_progress = started
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
        producer.send(topics[emission.kind], emission.key.encode(), emission.value())
        now = time.monotonic()
        if emission.kind == "prediction":
            stats.prediction_seconds = now - started
        if now - last_progress >= PROGRESS_INTERVAL_S:
            last_progress = now
            stats.seconds = now - started
            log.info("simulate.progress", **stats.as_dict())
    producer.flush(FLUSH_TIMEOUT_S)
    stats.seconds = time.monotonic() - started
    return stats


def serve(
    emissions: Iterable[Emission],
    *,
    kafka: KafkaSettings,
    rate: float,
    client_id: str,
    context: dict[str, Any],
) -> int:
    """A simulated scoring service's life: connect, publish, report; the exit code.

    Publishes to ``kafka.topics``' predictions and outcomes topics, with
    ``kafka.client``. SIGTERM and Ctrl-C stop it cleanly: what was sent is
    flushed and counted. ``context`` (seed, scenario, ...) goes into the start
    and end log lines.
    """
    log = structlog.get_logger("stream_mlops.simulate").bind(**context)
    stop = threading.Event()
    previous = _on_sigterm(stop)
    try:
        producer = open_transport(kafka, client_id=client_id).producer()
    except (TransportError, ValueError) as exc:
        log.error("simulate.failed", error=str(exc))
        _restore_sigterm(previous)
        return 1
    log.info(
        "simulate.started",
        bootstrap_servers=kafka.bootstrap_servers,
        client=kafka.client,
        security=kafka.security.redacted(),
        predictions_topic=kafka.topics.predictions,
        outcomes_topic=kafka.topics.outcomes,
        rate=rate,
    )
    try:
        stats = publish(
            emissions,
            producer,
            predictions_topic=kafka.topics.predictions,
            outcomes_topic=kafka.topics.outcomes,
            # Waits end early on SIGTERM: a slow pace or a late outcome never delays a stop.
            pacer=Pacer(rate, sleep=lambda seconds: _wait(stop, seconds)),
            stop=stop,
        )
    except TransportError as exc:
        log.error("simulate.failed", error=str(exc))
        return 1
    except KeyboardInterrupt:
        log.warning("simulate.interrupted")
        return 130
    finally:
        producer.close()
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
