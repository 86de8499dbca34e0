"""The relay: publish committed outbox rows to the provider, in order, in batches.

Each batch is claimed, published with one broker confirmation and marked
sent in one transaction, so a crash leaves its rows pending and they go
again with the same ids. What it guarantees: docs/guarantees.md; its
statements: docs/internals.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Min, Q
from django.utils import timezone

from kew.backoff import Backoff
from kew.errors import (
    BrokerBlocked,
    ConfigurationError,
    ConnectionLost,
    PartlyStored,
    ProviderError,
    SendError,
)
from kew.providers.base import Capability, DeliveryOptions, Outgoing, Prepared, Provider
from kew.providers.headers import CONTENT_TYPE
from kew.qchan.producers import LazyProducer
from kew_django.db.connections import close_db_connections
from kew_django.db.errors import DATABASE_ERRORS
from kew_django.db.notify import OUTBOX, Listener
from kew_django.models import OutboxMessage
from kew_django.observability.observer import NO_OBSERVER, Observer
from kew_django.outbox.validation import TOPIC, relay_options
from kew_django.relay.claims import Claims, mark_sent
from kew_django.relay.isolate import send_one_by_one
from kew_django.relay.order import EarlierBatchFailed, HeldBack, PublishOrder
from kew_django.relay.pause import PROBE, Pause
from kew_django.relay.rejections import retry_at, retry_backoff_over
from kew_django.relay.waiting import wait
from kew_django.topics import Declarations

log = logging.getLogger(__name__)
PENDING, SENT, FAILED = (
    OutboxMessage.Status.PENDING,
    OutboxMessage.Status.SENT,
    OutboxMessage.Status.FAILED,
)


@dataclass
class RelayStats:
    """What a relay has done since it started."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    purged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to the counters, from any publishing thread."""
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    @property
    def rate(self) -> float:
        """Return messages sent per second since the start."""
        return self.sent / max(time.monotonic() - self.started, 1e-9)


class Relay:
    """Move outbox rows to ``provider``. Several relays (processes) may run at once.

    ``queues`` limits it to some queues. With ``threads`` > 1 (the default on
    PostgreSQL) the next batch is claimed on another thread and connection
    while the current one is being published; batches still publish in the
    order they were claimed. A broker outage (``ConnectionLost``)
    makes ``run`` back off with jitter and costs no attempts; a broker that
    holds publishers back (``BrokerBlocked``) pauses it (``pause``), rows
    waiting in the outbox, until a publish goes through; a rejection
    (``SendError``) costs the rejected row one attempt, and after
    ``max_attempts`` the row is FAILED (shown in the admin).
    """

    def __init__(
        self,
        provider: Provider,
        *,
        using: str | None = None,
        batch_size: int = 500,
        queues: list[str] | None = None,
        max_attempts: int = 5,
        poll_interval: float = 1.0,
        backoff_max: float = 30.0,
        retention: timedelta = timedelta(days=7),
        progress_interval: float = 60.0,
        threads: int | None = None,
        observer: Observer | None = None,
    ):
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
        self.provider = provider
        self.using = using or router.db_for_write(OutboxMessage)
        self.batch_size = batch_size
        self.queues = list(queues or [])
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.backoff_max = backoff_max
        self.retention = retention
        self.progress_interval = progress_interval
        self.stats = RelayStats()
        self.observer = observer or NO_OBSERVER  # metrics, traces, liveness (observability)
        skip_locked = connections[self.using].features.has_select_for_update_skip_locked
        self.threads = threads or (2 if skip_locked else 1)
        self._order = PublishOrder()
        self.pause = Pause(log)  # while the broker pushes back (flow control)
        # NOTE: threads share one producer, used by one thread at a time (in claim order).
        self._producers = LazyProducer(self.provider)
        self._scheduled = Capability.SCHEDULED_DELIVERY in provider.capabilities
        self._subscriptions = Declarations(provider, self.using)  # before a topic's first publish
        self._claims = Claims(self.claimable, self.using)  # compiled once, on the first claim
        self.listener: Listener | None = None  # while ``run`` runs (tests wait on it)
        # Every message carries its id (for the broker's duplicate detection) and properties.
        provider.require(DeliveryOptions(message_id="id", properties={CONTENT_TYPE: "x"}))

    def relay_batch(self) -> int:
        """Claim, publish and mark one batch; return how many rows it settled.

        Raises ``ConnectionLost`` (nothing marked, no row's ``attempts``
        spent) when the provider is unreachable.
        """
        while True:
            try:
                return self._relay_batch()
            except HeldBack:  # rolled back: an earlier batch's rows are pending again
                time.sleep(0.005)  # let that batch settle

    def _relay_batch(self) -> int:
        placed: list[int] = []  # this batch's place in the publish order, once claimed
        try:
            return self._claim_and_publish(placed)
        finally:
            if placed:  # committed or rolled back: claims may see its rows again
                self._order.settled(placed[0])

    def _claim_and_publish(self, placed: list[int]) -> int:
        with transaction.atomic(using=self.using):
            with self._order.claim_lock:
                epoch = self._order.epoch()
                rows = self._claims.claim(self.batch_size)  # marked sent
                if not rows:
                    return 0
                place = self._order.reserve(epoch)
                placed.append(place)
            try:
                batch, refused = self._prepare(rows)  # while the batch before waits for its receipt
            except BaseException:
                with self._order.publishing(place):  # fail in its turn; later batches retry after
                    raise
            with self._order.publishing(place):  # batches publish in the order they were claimed
                sent, rejected, outage = self._publish_partly(batch, refused)
                if len(sent) + len(rejected) < len(rows):  # later batches must not overtake
                    self._order.hold_back_later(place)
            if len(sent) < len(rows):  # those after a rejection stay pending, unchanged
                unsent = {row.id for row in rows} - {row.id for row in sent}
                OutboxMessage.objects.using(self.using).filter(pk__in=unsent).update(
                    status=PENDING, sent_at=None
                )
            for row, error in rejected:
                self._reject(row, error)
        return self._settled(sent, rejected, outage)

    def publish_rows(self, rows: Sequence[Any]) -> int:
        """Publish committed pending ``rows`` as they are in memory, then mark the sent ones sent.

        What publishing on commit calls (``kew_django.outbox.committed``): no
        claim, so a relay that takes the rows meanwhile publishes them too (a
        duplicate, dropped by id or by an idempotent consumer). A rejection
        takes the relay's path; the rows after it stay pending. Raises
        ``ConnectionLost`` or ``BrokerBlocked`` with nothing marked, and
        ``PartlyStored`` once the confirmed rows are marked. Returns how many
        rows it settled.
        """
        batch, refused = self._prepare(rows)
        sent, rejected, outage = self._publish_partly(batch, refused)
        with transaction.atomic(using=self.using):
            mark_sent([row.id for row in sent], self.using)
            for row, error in rejected:
                self._reject(row, error)
        return self._settled(sent, rejected, outage)

    def _publish_partly(self, batch, refused):
        """``_publish``, and the broker's partial refusal (to raise once the rest is marked)."""
        try:
            sent, rejected = self._publish(batch, refused)
        except PartlySent as partly:
            return partly.sent, partly.rejected, partly.error
        return sent, rejected, None

    def _settled(self, sent, rejected, outage: PartlyStored | None) -> int:
        """Count the sent rows; raise the broker's partial refusal if any; return the total."""
        self.stats.add(sent=len(sent))
        self.observer.published(sent)
        if outage is not None:
            raise outage
        return len(sent) + len(rejected)

    def relay_all(self) -> int:
        """Relay batches until none is left (``--once``); return how many rows were settled."""
        totals: list[int] = []

        def drain() -> None:
            total = 0
            while settled := self.relay_batch():
                total += settled
            totals.append(total)

        self._on_threads(drain)
        return sum(totals)

    def _on_threads(self, target) -> None:
        """Run ``target`` on ``threads`` threads (this one included); re-raise the first error."""
        errors: list[BaseException] = []

        def publish_thread() -> None:
            try:
                target()
            except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
                errors.append(error)
            finally:
                close_db_connections()

        threads = [
            threading.Thread(target=publish_thread, name=f"kew-relay-{n}")
            for n in range(1, self.threads)
        ]
        for thread in threads:
            thread.start()
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - re-raised below, with the threads'
            errors.insert(0, error)
        finally:
            for thread in threads:
                thread.join()
        if errors:  # the cause, rather than the batches refused their turn because of it
            raise next((e for e in errors if not isinstance(e, EarlierBatchFailed)), errors[0])

    def claimable(self, now: datetime | None = None):
        """Return the rows this relay publishes as of ``now``, oldest first (the claim's query)."""
        now = now or timezone.now()
        pending = OutboxMessage.objects.using(self.using).filter(status=PENDING)
        if self.queues:
            pending = pending.filter(queue__in=self.queues)
        pending = pending.filter(retry_backoff_over(now))
        if not self._scheduled:  # hold scheduled rows back until they are due
            pending = pending.filter(Q(deliver_at__isnull=True) | Q(deliver_at__lte=now))
        return pending.order_by("created_at", "id")

    def _prepare(self, rows) -> tuple[list[tuple[Any, Prepared]], list[tuple[Any, Exception]]]:
        """Check and encode ``rows``; return ([(row, prepared)], [(refused row, error)]).

        Runs before the batch's turn to publish, so on another thread it
        overlaps the batch before it, which is waiting for its confirmation.
        No I/O, except once per topic: declaring its subscriptions.
        """
        batch: list[tuple[Any, Prepared]] = []
        refused: list[tuple[Any, Exception]] = []
        for row in rows:
            try:
                batch.append((row, self._outgoing(row)))
            except ConfigurationError as error:
                refused.append((row, error))
        return batch, refused

    def _publish(self, batch, refused):
        """Send the prepared ``batch``; return (sent rows, [(rejected row, error)])."""
        if not batch:
            return [], refused
        producer = self._producer()
        try:
            with self.observer.publishing([row for row, _ in batch]):
                producer.send_prepared([prepared for _, prepared in batch])
        except BrokerBlocked:  # the producer keeps what it wrote, to wait for it again
            raise
        except PartlyStored as error:  # the confirmed ones are marked sent; the others wait
            self._producers.drop()
            ordered = [row for row, _ in batch]
            stored = [row for index, row in enumerate(ordered) if index not in error.refused]
            raise PartlySent(stored, refused, error) from error
        except ConnectionLost:
            self._producers.drop()
            raise
        except SendError as error:
            self._producers.drop()
            ordered = [row for row, _ in batch]
            index = min(error.index or 0, len(ordered) - 1)
            return ordered[:index], [*refused, (ordered[index], error)]
        except ConfigurationError:  # refused before sending: find the row, send the others
            sent, alone = send_one_by_one(self._producers, batch)
            return sent, [*refused, *alone]
        return [row for row, _ in batch], refused

    def _producer(self):
        """Return the thread's producer; a broker that refuses the connection is an outage.

        A provider that cannot connect as configured (a wrong password, an
        unknown virtual host) raises ConfigurationError here: no row is at
        fault, so every row stays pending while the relay backs off and says why.
        """
        try:
            return self._producers.get()
        except ConfigurationError as error:
            raise ConnectionLost(f"the broker refused the relay's connection: {error}") from error

    def _outgoing(self, row) -> Prepared:
        """Return what to send for ``row``, prepared; ConfigurationError if it can never be sent."""
        # A provider without scheduled delivery only gets rows already due (see claimable).
        options = relay_options(
            message_id=str(row.id),
            headers=row.headers,
            content_type=row.content_type,
            deliver_at=row.deliver_at,
            scheduled=self._scheduled,
        )
        # The generic property rules and the provider's own (one bad row fails alone), and
        # the provider's encoding, done once.
        topic = TOPIC in row.headers
        if topic:
            self._subscriptions.ensure(row.queue)  # I/O once per topic: declares its subscriptions
        outgoing = Outgoing(row.queue, bytes(row.payload), options, topic=topic)
        return self.provider.prepare(outgoing)

    def _reject(self, row, error: Exception) -> None:
        attempts = row.attempts + 1
        permanent = isinstance(error, ConfigurationError) or attempts >= self.max_attempts
        status = FAILED if permanent else PENDING
        OutboxMessage.objects.using(self.using).filter(pk=row.id).update(
            attempts=attempts,
            last_error=str(error)[:10000],
            status=status,
            retry_at=None if permanent else retry_at(attempts, self.backoff_max),
        )
        self.stats.add(rejected=1, failed=int(permanent))
        self.observer.rejected(row, failed=permanent)
        if permanent:
            log.error(
                "outbox message %s to %s failed after %d attempt(s): %s",
                row.id,
                row.queue,
                attempts,
                error,
            )
        else:
            log.warning(
                "outbox message %s to %s rejected (attempt %d of %d): %s",
                row.id,
                row.queue,
                attempts,
                self.max_attempts,
                error,
            )

    def purge(self) -> int:
        """Delete sent rows older than the retention period; return how many went."""
        cutoff = timezone.now() - self.retention
        old = OutboxMessage.objects.using(self.using).filter(status=SENT, sent_at__lt=cutoff)
        purged = 0
        while ids := list(old.values_list("pk", flat=True)[:1000]):
            purged += OutboxMessage.objects.using(self.using).filter(pk__in=ids).delete()[0]
        self.stats.add(purged=purged)
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
        """Return one line: sent, rate, backlog and the oldest pending row's age.

        During a database outage the backlog is unknown, and the line says so
        (``kew_relay`` stopped then still logs its last line and exits 0).
        """
        try:
            count, age = self.backlog()
        except DATABASE_ERRORS:
            backlog = "backlog unknown (database unavailable)"
        else:
            oldest = f"{age:.1f}s" if age is not None else "-"
            backlog = f"backlog {count}, oldest pending {oldest}"
        return (
            f"relay: {self.stats.sent} sent ({self.stats.rate:.1f}/s), "
            f"{self.stats.failed} failed, {backlog}"
        )

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; the batches in flight are finished first."""
        listener = self.listener = Listener(OUTBOX, using=self.using).start()
        backoff = Backoff(self.backoff_max, logger=log)
        database = Backoff(self.backoff_max, what=f"database {self.using!r}", logger=log)
        chores = threading.Lock()  # purging and progress lines: one thread at a time
        next_chores = [time.monotonic(), time.monotonic()]  # purge, progress

        def publish_thread() -> None:
            while not stop.is_set():
                self.observer.relay_turned()
                listener.looking()  # this claim covers every notification so far
                try:
                    settled = self.relay_batch()
                except BrokerBlocked as error:  # flow control: the broker is up, but full
                    wait(stop, self.pause.blocked(error, self.observer))
                    continue
                except ProviderError as error:  # ConnectionLost, or an unexpected broker error
                    if self.pause.paused and isinstance(error, EarlierBatchFailed):
                        wait(stop, PROBE)  # behind the batch the broker holds back: no outage
                        continue
                    backoff.failed(error)
                    wait(stop, backoff.delay())
                    continue
                except DATABASE_ERRORS as error:
                    database.failed(error)
                    connections[self.using].close_if_unusable_or_obsolete()
                    wait(stop, database.delay())
                    continue
                except Exception as error:  # noqa: BLE001 - no error may end a relay thread
                    log.exception("relay: unexpected error; backing off and going on")
                    backoff.failed(error)
                    self._producers.drop()
                    connections[self.using].close_if_unusable_or_obsolete()
                    wait(stop, backoff.delay())
                    continue
                if settled:
                    self.pause.accepted(self.observer)
                backoff.succeeded()
                database.succeeded()
                if chores.acquire(blocking=False):
                    try:
                        self._chores(next_chores)
                    finally:
                        chores.release()
                if settled < self.batch_size:
                    wait(stop, self.poll_interval, listener)

        try:
            self._on_threads(publish_thread)
        finally:
            listener.close()
            self.listener = None
            self.close()
            close_db_connections()

    def close(self) -> None:
        """Close the relay's producer; the next publish opens a new one."""
        self._producers.drop()

    def _chores(self, due: list[float]) -> None:
        now = time.monotonic()
        if now >= due[0]:
            self.purge()
            due[0] = now + 3600
        if self.progress_interval and now >= due[1]:
            log.info(self.progress_line())
            due[1] = now + self.progress_interval


class PartlySent(Exception):
    """A batch the broker stored in part (``PartlyStored``): what was sent, what was rejected."""

    def __init__(self, sent: list[Any], rejected: list[tuple[Any, Exception]], error: PartlyStored):
        super().__init__(str(error))
        self.sent, self.rejected, self.error = sent, rejected, error
