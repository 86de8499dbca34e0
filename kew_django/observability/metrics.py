"""Prometheus metrics of the relay and the workers, named after OpenTelemetry's conventions.

Needs ``prometheus_client`` (``pip install kew[metrics]``); nothing else in
Kew imports this module unless metrics are asked for. ``Metrics`` is the
observer the relay and the workers call (on their own threads: every
update is thread-safe); it keeps its series in its own
``CollectorRegistry``, served on ``/metrics`` by ``health.HealthServer``.
``DatabaseCollector`` adds gauges read from the database at each scrape.
The list of series, with their labels, is in docs/operations.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kew.qchan.observe import Handling
from kew_django.db.connections import close_db_connections
from kew_django.limits.status import LimitView, read_limits
from kew_django.observability.admission import Refusals
from kew_django.observability.figures import queue_figures
from kew_django.observability.observer import Observer

log = logging.getLogger(__name__)
SYSTEM, QUEUE = "messaging_system", "messaging_destination_name"
REASON = "kew_reason"
OUTCOME, OPERATION = "kew_outcome", "messaging_operation_name"
LIMIT, LIMIT_REASON = "kew_limit", "kew_limit_reason"
# Seconds: from a millisecond handler to an hour-long import.
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 300, 3600)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics(Observer):
    """Count what the relay and the workers of this process do, per queue."""

    def __init__(self, *, system: str, registry: CollectorRegistry | None = None):
        self.system = system
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sent_total = Counter(
            "messaging_client_sent_messages",
            "Messages the relay published (confirmed by the provider, marked sent).",
            [SYSTEM, QUEUE],
            registry=r,
        )
        self.rejected_total = Counter(
            "kew_relay_rejected_messages",
            "Outbox rows the provider rejected (each costs the row one attempt).",
            [SYSTEM, QUEUE],
            registry=r,
        )
        self.failed_total = Counter(
            "kew_relay_failed_messages",
            "Outbox rows marked FAILED: rejected too often, or never sendable.",
            [SYSTEM, QUEUE],
            registry=r,
        )
        self.batch = Histogram(
            "messaging_client_operation_duration_seconds",
            "Time to publish one relay batch (send_many, up to the provider's confirmation).",
            [SYSTEM, OPERATION],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.consumed = Counter(
            "messaging_client_consumed_messages",
            "Deliveries handled by the workers, by outcome.",
            [SYSTEM, QUEUE, OUTCOME],
            registry=r,
        )
        self.duration = Histogram(
            "messaging_process_duration_seconds",
            "Time to process one delivery: decode, handler, ack or retry or dead letter.",
            [SYSTEM, QUEUE],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "kew_consumer_in_progress_messages",
            "Deliveries this process is handling now.",
            [SYSTEM, QUEUE],
            registry=r,
        )
        self.paused = Gauge(
            "kew_relay_paused",
            "1 while the broker holds the relay's publishes back (flow control), else 0.",
            [SYSTEM],
            registry=r,
        )
        self.pauses = Counter(
            "kew_relay_pauses", "Times the broker paused the relay.", [SYSTEM], registry=r
        )
        self.paused_seconds = Counter(
            "kew_relay_paused_seconds",
            "Seconds the relay spent paused by the broker (added when a pause ends).",
            [SYSTEM],
            registry=r,
        )
        self.limit_refused_total = Counter(
            "kew_limit_refused_starts",
            "Messages a limit made wait or step aside, once each, by the reason met first "
            "(kew_limit_reason: concurrency, key, rate, key_rate; the rate ones are throttled).",
            [SYSTEM, LIMIT, LIMIT_REASON],
            registry=r,
        )
        self.limit_wait = Histogram(
            "kew_limit_wait_duration_seconds",
            "Time a message waited for its limit before it started (waits are its count).",
            [SYSTEM, LIMIT],
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.system, *labels)
        return child

    def handling(self, seen: Handling) -> AbstractContextManager[object]:
        return self._handling(seen)

    @contextmanager
    def _handling(self, seen: Handling) -> Iterator[None]:
        gauge = self._child(self.in_progress, seen.queue)
        gauge.inc()
        started = time.perf_counter()
        try:
            yield
        finally:
            gauge.dec()
            self._child(self.duration, seen.queue).observe(time.perf_counter() - started)
            outcome = seen.outcome.value if seen.outcome is not None else "error"
            self._child(self.consumed, seen.queue, outcome).inc()

    def publishing(self, rows: Sequence[Any]) -> AbstractContextManager[object]:
        return self._child(self.batch, "send").time()

    def published(self, rows: Sequence[Any]) -> None:
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.queue] = counts.get(row.queue, 0) + 1
        for queue, count in counts.items():
            self._child(self.sent_total, queue).inc(count)

    def rejected(self, row: Any, *, failed: bool) -> None:
        self._child(self.rejected_total, row.queue).inc()
        if failed:
            self._child(self.failed_total, row.queue).inc()

    def relay_paused(self, reason: str) -> None:
        self._child(self.paused).set(1)
        self._child(self.pauses).inc()

    def relay_resumed(self, seconds: float) -> None:
        self._child(self.paused).set(0)
        self._child(self.paused_seconds).inc(seconds)

    def limit_refused(self, limit: str, reason: str) -> None:
        self._child(self.limit_refused_total, limit, reason).inc()

    def limit_waited(self, limit: str, seconds: float) -> None:
        self._child(self.limit_wait, limit).observe(seconds)


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape (``figures.queue_figures``).

    Every process that serves them reads the same tables: aggregate with
    ``max by (messaging_destination_name)``. Runs on the scraping thread
    and closes that thread's connections (``close``); a database error leaves the
    gauges out of that scrape (and is logged).
    """

    def __init__(self, using: str | None = None, *, close: bool = True):
        self.using = using
        self.close = close  # False in a web request, whose connection Django manages

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            figures = queue_figures(self.using)
            limits = read_limits(self.using)
        except Exception as error:  # noqa: BLE001 - a scrape must not fail with the database
            log.warning("metrics: the database gauges are unavailable: %s", error)
            return
        finally:
            if self.close:
                close_db_connections()
        gauges = [
            ("kew_outbox_backlog_messages", "Pending outbox rows.", "backlog"),
            ("kew_outbox_failed_messages", "FAILED outbox rows.", "failed"),
            ("kew_dead_letters", "Dead letters not requeued or discarded.", "dead_letters"),
            ("kew_queue_depth_messages", "Database provider: rows in the queue.", "depth"),
            ("kew_queue_leased_messages", "Database provider: rows leased now.", "in_progress"),
        ]
        for name, help_text, attribute in gauges:
            family = GaugeMetricFamily(name, help_text, labels=[QUEUE])
            for queue, row in figures.items():
                family.add_metric([queue], getattr(row, attribute))
            yield family
        oldest = GaugeMetricFamily(
            "kew_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row (0 when there is none).",
            labels=[QUEUE],
        )
        for queue, row in figures.items():
            oldest.add_metric([queue], row.oldest_pending or 0.0)
        yield oldest
        yield from limit_gauges(limits)


class RefusalCollector(Collector):
    """The counter of admissions refused in this process, from ``admission.refusals``."""

    def __init__(self, refusals: Refusals):
        self.refusals = refusals

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "kew_admissions_refused",
            "Requests refused at the door: 503 (backlog) or 429 (per_key), by queue.",
            labels=[QUEUE, REASON],
        )
        for (queue, reason), count in sorted(self.refusals.counts().items()):
            family.add_metric([queue, reason], count)
        yield family


def limit_gauges(limits: list[LimitView]) -> Iterator[GaugeMetricFamily]:
    """Yield each limit's slots in use, its concurrency and its parked messages."""
    gauges = [
        ("kew_limit_slots_in_use", "Slots of the limit held now (all processes).", "in_use"),
        ("kew_limit_parked_messages", "Messages parked for the limit's slots.", "parked"),
    ]
    for name, help_text, attribute in gauges:
        family = GaugeMetricFamily(name, help_text, labels=[LIMIT])
        for view in limits:
            family.add_metric([view.name], getattr(view, attribute))
        yield family
    size = GaugeMetricFamily("kew_limit_slots", "The limit's concurrency.", labels=[LIMIT])
    for view in limits:
        if view.limit.concurrency is not None:
            size.add_metric([view.name], view.limit.concurrency)
    yield size
