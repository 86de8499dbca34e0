"""The relay: publish committed outbox rows to the provider, in order, in batches.

A batch is claimed with row locks that skip rows other relays hold
(PostgreSQL), published with one ``send_many`` (pipelined, one broker
confirmation) and marked sent in the same transaction, after the
provider confirmed it. A crash in between leaves the rows pending: they
are published again with the same ids, and the broker's duplicate
detection (or an idempotent consumer) drops the second copy.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connections, router, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from kew.errors import ConfigurationError, ConnectionLost, SendError
from kew.qchan.spi import CONTENT_TYPE, Capability, Connector, DeliveryOptions, Outgoing, Producer
from kew_django.models import OutboxMessage
from kew_django.notify import OUTBOX, Listener

log = logging.getLogger(__name__)
PENDING, SENT, FAILED = (OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT,
                         OutboxMessage.Status.FAILED)


@dataclass
class RelayStats:
    """What a relay has done since it started."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    purged: int = 0

    @property
    def rate(self) -> float:
        """Return messages sent per second since the start."""
        return self.sent / max(time.monotonic() - self.started, 1e-9)


class Relay:
    """Move outbox rows to ``connector``. One relay per thread; run several for throughput.

    ``queues`` limits it to some queues. A broker outage (``ConnectionLost``)
    makes ``run`` back off with jitter and costs no attempts; a rejection
    (``SendError``) costs the rejected row one attempt, and after
    ``max_attempts`` the row is FAILED (shown in the admin).
    """

    def __init__(
        self,
        connector: Connector,
        *,
        using: str | None = None,
        batch_size: int = 100,
        queues: list[str] | None = None,
        max_attempts: int = 5,
        poll_interval: float = 1.0,
        backoff_max: float = 30.0,
        retention: timedelta = timedelta(days=7),
        progress_interval: float = 60.0,
    ):
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        self.connector = connector
        self.using = using or router.db_for_write(OutboxMessage)
        self.batch_size = batch_size
        self.queues = list(queues or [])
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.backoff_max = backoff_max
        self.retention = retention
        self.progress_interval = progress_interval
        self.stats = RelayStats()
        self._producer: Producer | None = None
        self._scheduled = Capability.SCHEDULED_DELIVERY in connector.capabilities

    def relay_batch(self) -> int:
        """Claim, publish and mark one batch; return how many rows it settled.

        Raises ``ConnectionLost`` (nothing marked, no attempts spent) when
        the provider is unreachable.
        """
        with transaction.atomic(using=self.using):
            rows = self._claim()
            if not rows:
                return 0
            sent, rejected = self._publish(rows)
            now = timezone.now()
            if sent:
                OutboxMessage.objects.using(self.using).filter(
                    pk__in=[row.pk for row in sent]
                ).update(status=SENT, sent_at=now)
            for row, error in rejected:
                self._reject(row, error)
        self.stats.sent += len(sent)
        return len(sent) + len(rejected)

    def relay_all(self) -> int:
        """Relay batches until none is left (``--once``); return how many rows were settled."""
        total = 0
        while settled := self.relay_batch():
            total += settled
        return total

    def claimable(self):
        """Return the pending rows this relay publishes, oldest first (the claim's query)."""
        pending = OutboxMessage.objects.using(self.using).filter(status=PENDING)
        if self.queues:
            pending = pending.filter(queue__in=self.queues)
        if not self._scheduled:  # hold scheduled rows back until they are due
            pending = pending.filter(Q(deliver_at__isnull=True) | Q(deliver_at__lte=timezone.now()))
        return pending.order_by("created_at", "id")

    def _claim(self) -> list[OutboxMessage]:
        pending = self.claimable()
        if connections[self.using].features.has_select_for_update_skip_locked:
            return list(pending.select_for_update(skip_locked=True)[: self.batch_size])
        # SQLite: write first, so the transaction holds the write lock from its start
        # and concurrent relays queue up instead of deadlocking.
        OutboxMessage.objects.using(self.using).filter(
            pk__in=pending.values("pk")[: self.batch_size]
        ).update(attempts=F("attempts"))
        return list(pending[: self.batch_size])

    def _publish(self, rows):
        """Send ``rows``; return (sent rows, [(rejected row, error)])."""
        batch, refused = [], []
        for row in rows:
            try:
                batch.append((row, self._outgoing(row)))
            except ConfigurationError as error:
                refused.append((row, error))
        if not batch:
            return [], refused
        try:
            self._get_producer().send_many([outgoing for _, outgoing in batch])
        except ConnectionLost:
            self._drop_producer()
            raise
        except SendError as error:
            self._drop_producer()
            ordered = [row for row, _ in batch]
            index = min(error.index or 0, len(ordered) - 1)
            return ordered[:index], [*refused, (ordered[index], error)]
        return [row for row, _ in batch], refused

    def _outgoing(self, row: OutboxMessage) -> Outgoing:
        options = DeliveryOptions(
            deliver_at=row.deliver_at,
            message_id=str(row.pk),
            properties={**row.headers, CONTENT_TYPE: row.content_type},
        )
        self.connector.require(options)
        return Outgoing(row.queue, bytes(row.payload), options)

    def _reject(self, row: OutboxMessage, error: Exception) -> None:
        attempts = row.attempts + 1
        permanent = isinstance(error, ConfigurationError) or attempts >= self.max_attempts
        status = FAILED if permanent else PENDING
        OutboxMessage.objects.using(self.using).filter(pk=row.pk).update(
            attempts=attempts, last_error=str(error)[:10000], status=status
        )
        self.stats.rejected += 1
        if permanent:
            self.stats.failed += 1
            log.error("outbox message %s to %s failed after %d attempt(s): %s",
                      row.pk, row.queue, attempts, error)
        else:
            log.warning("outbox message %s to %s rejected (attempt %d of %d): %s",
                        row.pk, row.queue, attempts, self.max_attempts, error)

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.connector.producer()
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close()
            except Exception:  # noqa: BLE001 - it is broken already
                log.debug("closing a broken producer failed", exc_info=True)

    def purge(self) -> int:
        """Delete sent rows older than the retention period; return how many went."""
        cutoff = timezone.now() - self.retention
        old = OutboxMessage.objects.using(self.using).filter(status=SENT, sent_at__lt=cutoff)
        purged = 0
        while ids := list(old.values_list("pk", flat=True)[:1000]):
            purged += OutboxMessage.objects.using(self.using).filter(pk__in=ids).delete()[0]
        self.stats.purged += purged
        return purged

    def backlog(self) -> tuple[int, float | None]:
        """Return the number of pending rows and the age in seconds of the oldest."""
        pending = OutboxMessage.objects.using(self.using).filter(status=PENDING)
        if self.queues:
            pending = pending.filter(queue__in=self.queues)
        oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
        age = (timezone.now() - oldest).total_seconds() if oldest else None
        return pending.count(), age

    def progress_line(self) -> str:
        """Return one line: sent, rate, backlog and the oldest pending row's age."""
        count, age = self.backlog()
        oldest = f"{age:.1f}s" if age is not None else "-"
        return (f"relay: {self.stats.sent} sent ({self.stats.rate:.1f}/s), "
                f"{self.stats.failed} failed, backlog {count}, oldest pending {oldest}")

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; the batch in flight is finished first."""
        from kew_django.worker import close_db_connections

        listener = Listener(OUTBOX, using=self.using).start()
        backoff = Backoff(self.backoff_max)
        next_progress = next_purge = time.monotonic()
        try:
            while not stop.is_set():
                generation = listener.generation()
                try:
                    settled = self.relay_batch()
                except ConnectionLost as error:
                    backoff.failed(error)
                    _wait(stop, backoff.delay())
                    continue
                backoff.succeeded()
                now = time.monotonic()
                if now >= next_purge:
                    self.purge()
                    next_purge = now + 3600
                if self.progress_interval and now >= next_progress:
                    log.info(self.progress_line())
                    next_progress = now + self.progress_interval
                if settled < self.batch_size:
                    _wait(stop, self.poll_interval, listener, generation)
        finally:
            listener.close()
            self._drop_producer()
            close_db_connections()


class Backoff:
    """Exponential back-off with jitter; logs once per change of state."""

    def __init__(self, maximum: float, *, first: float = 0.5, what: str = "broker"):
        self.maximum = maximum
        self.first = first
        self.what = what
        self.failures = 0
        self.since: float | None = None

    def failed(self, error: Exception) -> None:
        if self.failures == 0:
            self.since = time.monotonic()
            log.warning("%s unreachable (%s); backing off, no attempts spent", self.what, error)
        self.failures += 1

    def succeeded(self) -> None:
        if self.failures:
            down = time.monotonic() - (self.since or time.monotonic())
            log.warning("%s reachable again after %.1fs", self.what, down)
        self.failures = 0

    def delay(self) -> float:
        ceiling = min(self.maximum, self.first * 2 ** min(self.failures - 1, 16))
        return random.uniform(ceiling / 2, ceiling)


def _wait(stop: threading.Event, seconds: float, listener: Listener | None = None,
          generation: int = 0) -> None:
    """Wait ``seconds``, waking early on ``stop`` or (with a listener) a notification."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
        if listener is not None and listener.active:
            if listener.wait(None, generation, min(remaining, 0.25)):
                return
        else:
            stop.wait(min(remaining, 0.25))
