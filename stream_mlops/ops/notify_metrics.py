"""The notifier's metrics: records read, deliveries, retries, dead letters, what is in flight.

The notifier is not on the task runtime (an at-least-once group member, no
transactions); it keeps plain integer counters (``NotifierStats``) on its
loop's thread. This collector reads them at each scrape: an integer read is
atomic, so the scrape never blocks the loop, and the loop pays nothing.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from stream_mlops.ops.notify_service import NotifierStats
>>> stats = NotifierStats(records=3, delivered=2, retries=1, in_flight=1)
>>> registry = CollectorRegistry()
>>> registry.register(NotifierCollector(stats))
>>> [line for line in generate_latest(registry).decode().splitlines()
...  if line.startswith("stream_mlops_notifier_deliveries_total")]
['stream_mlops_notifier_deliveries_total 2.0']
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream_mlops.ops.notify_service import NotifierStats

__all__ = ["NotifierCollector"]

# NotifierStats field -> (metric name without _total, help)
_COUNTERS = {
    "records": ("stream_mlops_notifier_records", "Alerts and model updates read"),
    "delivered": ("stream_mlops_notifier_deliveries", "Notifications a webhook accepted (2xx)"),
    "retries": ("stream_mlops_notifier_retries", "Failed deliveries that will be retried"),
    "dead_letters": (
        "stream_mlops_notifier_dead_letters",
        "Records sent to the dead-letter topic: unreadable, refused by a webhook, or out of "
        "attempts",
    ),
    "filtered": (
        "stream_mlops_notifier_filtered",
        "Notifications a webhook's filter (models, severity, events) did not want",
    ),
    "not_repeated": (
        "stream_mlops_notifier_not_repeated",
        "Records read again after a rebalance and not sent again (delivered by this process)",
    ),
    "commits": ("stream_mlops_notifier_commits", "Offset commits after deliveries"),
}


class NotifierCollector(Collector):
    """``NotifierStats`` as Prometheus metrics, read at each scrape."""

    def __init__(self, stats: NotifierStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        for field, (name, documentation) in _COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=getattr(stats, field))
        yield GaugeMetricFamily(
            "stream_mlops_notifier_in_flight",
            "Records held until every webhook that wants them has settled them",
            value=stats.in_flight,
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()
