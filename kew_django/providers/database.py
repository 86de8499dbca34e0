"""A provider that keeps its queues in the Django database (the QueuedMessage table).

No broker to run: the embedded default. Sends made inside a transaction
are part of it. A consumer leases rows, ``prefetch`` at a time, with
statements built once (``leases``): ``available_at`` moves to the end of
the lease, an ack deletes the row, and a lease that runs out (a crashed
consumer) makes the row deliverable again with ``redelivered`` set.
Several consumers share a queue: leases skip rows locked by others on
PostgreSQL and are serialised by the database's write lock on SQLite.

Leases are short (30 s by default) and renewed: the worker's heartbeat
calls ``DatabaseDelivery.renew`` (one UPDATE of one row, from its own
thread) while the handler runs, so a handler may run for hours and keep
its message, and a crashed worker's message comes back within one lease.

One clock: every lease, renewal and due time is the database's time
(``Now()`` in the statement), never a host's, so a consumer whose clock
runs ahead does not take other hosts' leases or scheduled rows early.
A row sent without ``deliver_at`` is due at the database's now; a
``deliver_at``, read on the sender's clock, is moved by the sender's
offset from the database's (``clock``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import Case, F, Min, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from kew.errors import ConfigurationError, ConnectionLost, SendError
from kew.providers.base import (
    Capability,
    Delivery,
    DeliveryOptions,
    Outgoing,
    Producer,
    Provider,
    Receiver,
)
from kew_django.db.errors import DATABASE_ERRORS
from kew_django.db.notify import QUEUE, Listener
from kew_django.db.wake import wake_on_commit
from kew_django.providers import database_options, subscriptions
from kew_django.providers.clock import ZERO, Clock
from kew_django.providers.database_send import NewRow, QueueInsert
from kew_django.providers.leases import RETURNED, Leased, Leases

log = logging.getLogger(__name__)
MAX_ID_LENGTH = 100


def _model():
    from kew_django.models import QueuedMessage  # this module loads before the models do

    return QueuedMessage


URL_OPTIONS = set(database_options.OPTIONS)
DEFAULT_LEASE = 30.0


class DatabaseProvider(Provider):
    """Queues in the ``QueuedMessage`` table of database ``using``; thread-safe.

    ``lease`` is how long a delivery stays invisible to other consumers
    before it is delivered again unless it is renewed (the worker's
    heartbeat renews it every third of a lease while the handler runs).
    ``poll_interval`` bounds the wait between claims when no
    notification arrives (PostgreSQL LISTEN/NOTIFY wakes consumers at once).
    ``direct`` (on unless ``direct=false``): ``Channel.send`` to its queues
    from its own database writes the queue row in the caller's transaction
    (``enqueue``) instead of an outbox row for the relay.
    """

    capabilities = frozenset(Capability) - {Capability.DEAD_LETTER_ADDRESS}

    def __init__(
        self,
        *,
        using: str | None = None,
        lease: float = DEFAULT_LEASE,
        poll_interval: float | None = None,
        direct: bool = True,
    ):
        self.using = using or router.db_for_write(_model())
        if self.using not in connections:
            raise ConfigurationError(f"database:// names unknown database {self.using!r}")
        self.lease = timedelta(seconds=database_options.seconds("lease", lease))
        listens = connections[self.using].vendor == "postgresql"
        if poll_interval is not None:
            poll_interval = database_options.seconds("poll_interval", poll_interval)
        self.poll_interval = poll_interval or (1.0 if listens else 0.05)
        self._listener: Listener | None = None
        self._lock = threading.Lock()
        self.clock = Clock(self.using)
        self.direct = direct
        self._insert: QueueInsert | None = None

    @classmethod
    def from_url(cls, url: str, **options) -> DatabaseProvider:
        """Return the provider for ``database://[ALIAS][?OPTION=VALUE&...]`` (the constructor's).

        ALIAS is a DATABASES key (the default database when absent); query
        options and keyword options are the constructor's, keywords winning.
        """
        return cls(**database_options.parse(url, options))

    def producer(self) -> Producer:
        return DatabaseProducer(self)

    def enqueue(self, rows: Sequence[NewRow]) -> list[int | None]:
        """Write ``rows`` in the current transaction of ``using``, in order; return their ids.

        A due time is moved by this host's clock offset (``Clock.offset``).
        Consumers are woken once the transaction commits. Database errors
        propagate as they are, as an outbox write's do.
        """
        if any(row.available_at for row in rows):
            offset = self.clock.offset()
            rows = [
                row._replace(available_at=row.available_at + offset) if row.available_at else row
                for row in rows
            ]
        if self._insert is None:
            self._insert = QueueInsert(self.using)
        ids = self._insert.insert(rows)
        for queue in {row.queue for row in rows}:
            wake_on_commit(QUEUE, queue, using=self.using)
        return ids

    def receiver(self, queue: str, *, prefetch: int = 1) -> Receiver:
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")
        return DatabaseReceiver(self, queue, prefetch=prefetch)

    def browse(self, queue: str, *, limit: int = 100) -> Iterator[Delivery]:
        rows = _model().objects.using(self.using).filter(queue=queue).order_by("available_at", "id")
        for row in rows[:limit]:
            yield DatabaseDelivery(self, row, consumer=None)

    def subscribe(self, topic: str, name: str) -> str:
        try:
            return subscriptions.subscribe(self.using, topic, name)
        except DATABASE_ERRORS as error:
            raise ConnectionLost(f"database {self.using!r}: {error}") from error

    def pending(self, queue: str) -> int:
        """Return how many messages wait in ``queue`` (scheduled and leased ones included)."""
        return _model().objects.using(self.using).filter(queue=queue).count()

    def listener(self) -> Listener:
        """Return the shared listener for queue notifications, started on first use."""
        with self._lock:
            if self._listener is None:
                self._listener = Listener(QUEUE, using=self.using).start()
            return self._listener

    def close(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()


class DatabaseProducer(Producer):
    """Insert rows into the queue table, in the caller's transaction if there is one."""

    def __init__(self, provider: DatabaseProvider):
        self.provider = provider

    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        self.send_many([Outgoing(queue, payload, options or DeliveryOptions())])

    def send_many(self, batch: Sequence[Outgoing]) -> None:
        """Insert the batch in one statement; ids already queued are dropped.

        A batch with a ``deliver_at`` reads the database's clock first, at
        most once a minute (``Clock.offset``). A topic item becomes one row
        per subscription of the topic.
        """
        if not batch:
            return
        now = timezone.now()
        using = self.provider.using
        for item in batch:
            if item.topic:
                self.provider.validate(item)
        try:
            batch = subscriptions.fan_out(using, batch)
            scheduled = any(item.options.deliver_at for item in batch)
            offset = self.provider.clock.offset() if scheduled else ZERO
            rows = [self._row(item, now, offset) for item in batch]
            with transaction.atomic(using=using):
                _model().objects.using(using).bulk_create(rows, ignore_conflicts=True)
                for queue in {item.queue for item in batch}:
                    wake_on_commit(QUEUE, queue, using=using)
        except DATABASE_ERRORS as error:
            raise ConnectionLost(f"database {using!r}: {error}") from error
        except (IntegrityError, DatabaseError) as error:
            raise SendError(f"database {using!r} refused the batch: {error}", index=0) from error

    def _row(self, item: Outgoing, now, offset):
        self.provider.require(item.options)
        if not item.queue:
            raise ConfigurationError("a queue needs a name")
        message_id, deliver_at = item.options.message_id, item.options.deliver_at
        if message_id is not None and len(message_id) > MAX_ID_LENGTH:
            raise ConfigurationError(f"message ids have at most {MAX_ID_LENGTH} characters")
        return _model()(
            queue=item.queue,
            payload=bytes(item.payload),
            message_id=message_id,
            properties=dict(item.options.properties),
            available_at=Now() if deliver_at is None else deliver_at + offset,
            created_at=now,
        )


class DatabaseReceiver(Receiver):
    """Lease deliveries from one queue; the thread that calls ``receive`` does the queries.

    ``prefetch`` rows are leased in one statement and handed out in queue
    order, one per ``receive``. A leased row waits here at most half a
    lease: older ones are released to their place in the queue (as they
    were) and a fresh batch is leased, so a row is never handed out with
    less than half its lease left. Rows waiting here are invisible to
    other consumers until released (``close``) or their lease ends (a
    crash; they then come back with ``redelivered`` set, as if delivered).
    """

    def __init__(self, provider: DatabaseProvider, queue: str, *, prefetch: int = 1):
        self.provider = provider
        self.queue = queue
        self.prefetch = prefetch
        self._unacked: dict[int, uuid.UUID] = {}
        self._waiting: collections.deque[Leased] = collections.deque()  # leased, not handed out
        self._waiting_token: uuid.UUID | None = None
        self._fresh_until = 0.0  # monotonic: hand out waiting rows until then
        self._closed = False
        self._opened_connection_in: int | None = None  # thread id, if we opened its connection
        self._leases = Leases(provider.using)
        features = connections[provider.using].features
        self._skip_locked = features.has_select_for_update_skip_locked

    def receive(self, timeout: float | None = None) -> Delivery | None:
        if self._closed:
            raise ConfigurationError("receive() on a closed consumer")
        deadline = None if timeout is None else time.monotonic() + timeout
        listener = self.provider.listener()
        connection = connections[self.provider.using]
        if self._opened_connection_in is None and connection.connection is None:
            self._opened_connection_in = threading.get_ident()
        while True:
            generation = listener.generation(self.queue)
            try:
                delivery = self._next()
                next_due = None if delivery else self._next_due()
            except DATABASE_ERRORS as error:
                raise ConnectionLost(f"database {self.provider.using!r}: {error}") from error
            if delivery is not None:
                self._unacked[delivery._pk] = delivery._token
                return delivery
            wait = self.provider.poll_interval
            if next_due is not None:  # a scheduled or leased row: wake when it is due
                wait = min(wait, max(0.005, next_due.total_seconds()))
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            listener.wait(self.queue, generation, wait)

    def receive_ready(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` rows leased with the last batch and still fresh; no query."""
        if self._closed:
            raise ConfigurationError("receive() on a closed consumer")
        taken: list[Delivery] = []
        while self._waiting and len(taken) < limit and time.monotonic() < self._fresh_until:
            assert self._waiting_token is not None
            row, token = self._waiting.popleft(), self._waiting_token
            delivery = DatabaseDelivery(self.provider, row, consumer=self, token=token)
            self._unacked[delivery._pk] = delivery._token
            taken.append(delivery)
        return taken

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the rows of ``deliveries`` in one transaction (one commit); as ``ack`` each.

        Deliveries already acked in the handlers' transaction
        (``ack_in_transaction``) are skipped.
        """
        mine = [
            d
            for d in deliveries
            if isinstance(d, DatabaseDelivery) and d._consumer is self and not d.settled
        ]
        if not mine:
            return
        by_token: dict[uuid.UUID, list[int]] = collections.defaultdict(list)
        for own in mine:
            by_token[own._token].append(own._pk)
        try:
            with transaction.atomic(using=self.provider.using):
                deleted = sum(
                    self._leases.delete_many(pks, token) for token, pks in by_token.items()
                )
        except DATABASE_ERRORS as error:
            raise ConnectionLost(f"database {self.provider.using!r}: {error}") from error
        for own in mine:
            self._unacked.pop(own._pk, None)
        if deleted < len(mine):
            log.warning(
                "%d of %d acks on %s came after their lease ended; they may be delivered again",
                len(mine) - deleted,
                len(mine),
                self.queue,
            )
        for delivery in deliveries:
            if not isinstance(delivery, DatabaseDelivery) or delivery._consumer is not self:
                delivery.ack()
            else:
                delivery.settled = True

    def _next(self) -> DatabaseDelivery | None:
        """Hand out a waiting row if it is fresh; otherwise lease a batch."""
        if self._waiting and time.monotonic() >= self._fresh_until:
            self._release_waiting()
        if not self._waiting:
            self._lease_batch()
        if not self._waiting:
            return None
        row = self._waiting.popleft()
        assert self._waiting_token is not None
        return DatabaseDelivery(self.provider, row, consumer=self, token=self._waiting_token)

    def _lease_batch(self) -> None:
        token, lease = uuid.uuid4(), self.provider.lease
        if self._leases.supported:
            rows = self._leases.lease(self.queue, length=lease, token=token, limit=self.prefetch)
        else:
            rows = self._orm_lease(token)
        self._waiting.extend(rows)
        self._waiting_token = token
        self._fresh_until = time.monotonic() + lease.total_seconds() / 2

    def _release_waiting(self) -> None:
        rows = [(row.id, row.available_at) for row in self._waiting]
        self._waiting.clear()
        if rows and self._waiting_token is not None:
            self._leases.release(rows, self._waiting_token)
            wake_on_commit(QUEUE, self.queue, using=self.provider.using)

    def _orm_lease(self, token: uuid.UUID) -> list[Leased]:
        """Lease the first available row with the ORM (databases without UPDATE ... RETURNING)."""
        objects = _model().objects.using(self.provider.using)
        head = objects.filter(queue=self.queue, available_at__lte=Now())
        head = head.order_by("available_at", "id")
        until = Now() + self.provider.lease
        with transaction.atomic(using=self.provider.using):
            if self._skip_locked:
                head = head.select_for_update(skip_locked=True)
            found = head.values_list(*RETURNED, "available_at", "lease_token").first()
            if found is None:
                return []
            *fields, place, leased_before = found
            claimed = objects.filter(pk=found[0], available_at__lte=Now()).update(
                available_at=until,
                leased_until=until,
                lease_token=token,
                redelivered=Case(
                    When(lease_token__isnull=False, then=Value(True)), default="redelivered"
                ),
            )
        if not claimed:  # another consumer took it in between (no row locks here)
            return []
        row = Leased._make([*fields, place])
        return [row._replace(redelivered=row.redelivered or leased_before is not None)]

    def _next_due(self) -> timedelta | None:
        """Return how long until the queue's next row is due, by the database's clock."""
        rows = _model().objects.using(self.provider.using).filter(queue=self.queue)
        return rows.aggregate(due=Min(F("available_at") - Now()))["due"]

    def close(self) -> None:
        """Stop consuming; leased, unacked rows become available again at once."""
        if self._closed:
            return
        self._closed = True
        try:
            self._release_waiting()
        except DatabaseError:
            log.warning("could not release leased messages; they come back when their lease ends")
        for pk, token in self._unacked.items():
            try:
                _model().objects.using(self.provider.using).filter(pk=pk, lease_token=token).update(
                    available_at=Now(),
                    leased_until=None,
                    lease_token=None,
                    redelivered=True,
                )
            except DatabaseError:
                log.warning("could not release message %s; it comes back when its lease ends", pk)
        if self._unacked:
            wake_on_commit(QUEUE, self.queue, using=self.provider.using)
        self._unacked.clear()
        self._close_own_connection()

    def _close_own_connection(self) -> None:
        # A consumer that opened its thread's connection closes it: threads that end
        # with a connection open leak it (and block dropping a test database).
        connection = connections[self.provider.using]
        if self._opened_connection_in == threading.get_ident() and not connection.in_atomic_block:
            connection.close()


class DatabaseDelivery(Delivery):
    """A row taken (or browsed) from a database queue."""

    def __init__(
        self,
        provider: DatabaseProvider,
        row,
        *,
        consumer: DatabaseReceiver | None,
        token: uuid.UUID | None = None,
    ):
        """``row``: a ``Leased`` row and its lease ``token``, or a browsed model instance."""
        self.queue = row.queue
        self.payload = bytes(row.payload)
        self.message_id = row.message_id
        self.properties = dict(row.properties or {})
        self.redelivered = row.redelivered
        self._provider = provider
        self._pk = row.id
        self._token = token if token is not None else row.lease_token
        self._consumer = consumer
        self.lease = provider.lease.total_seconds()
        self.settled = False  # deleted by a committed ack, or leased to another: ack does nothing

    def renew(self) -> bool:
        """Move the lease's end to ``lease`` from now: one UPDATE of this row (any thread).

        "Now" is the database's clock. Returns False if the lease ran out and
        another consumer took the row.
        """
        until = Now() + self._provider.lease
        try:
            renewed = (
                _model()
                .objects.using(self._provider.using)
                .filter(pk=self._pk, lease_token=self._token)
                .update(available_at=until, leased_until=until)
            )
        except DATABASE_ERRORS as error:
            raise ConnectionLost(f"database {self._provider.using!r}: {error}") from error
        return bool(renewed)

    def ack(self) -> None:
        """Delete the row; if its lease ran out and another consumer took it, log and carry on."""
        if self._consumer is None:
            raise ConfigurationError("a browsed message cannot be acknowledged")
        if self.settled:
            return
        try:
            deleted = self._consumer._leases.delete(self._pk, self._token)
        except DATABASE_ERRORS as error:
            raise ConnectionLost(f"database {self._provider.using!r}: {error}") from error
        self._consumer._unacked.pop(self._pk, None)
        self.settled = True
        if not deleted:
            log.warning(
                "ack of message %s on %s came after its lease ended; it may be delivered again",
                self.message_id or self._pk,
                self.queue,
            )


class LeaseLost(Exception):
    """A row to be acked in the handlers' transaction is no longer leased to its consumer."""


def ack_in_transaction(using: str, deliveries: Sequence[Delivery]) -> list[DatabaseDelivery]:
    """Delete, in the current transaction of ``using``, the rows of ``deliveries`` queued there.

    The ack then commits with the handlers' writes (no commit of its own).
    Returns the deliveries whose rows were deleted; call ``acked_in_transaction``
    with them once the transaction has committed. Deliveries of other
    providers or databases are left for ``ack``. Raises ``LeaseLost`` if a
    row's lease ran out and another consumer took it: the caller rolls the
    transaction back.
    """
    by_token: dict[tuple[DatabaseReceiver, uuid.UUID], list[DatabaseDelivery]] = (
        collections.defaultdict(list)
    )
    for delivery in deliveries:
        if not isinstance(delivery, DatabaseDelivery) or delivery.settled:
            continue
        receiver = delivery._consumer
        if receiver is not None and receiver.provider.using == using:
            by_token[receiver, delivery._token].append(delivery)
    deleted: list[DatabaseDelivery] = []
    for (receiver, token), mine in by_token.items():
        count = receiver._leases.delete_many([d._pk for d in mine], token)  # errors as they are
        if count < len(mine):
            lost = len(mine) - count
            raise LeaseLost(
                f"{lost} of {len(mine)} leases on {receiver.queue} are no longer this "
                "consumer's (they ran out, or a database crash lost them)"
            )
        deleted.extend(mine)
    return deleted


def acked_in_transaction(deliveries: Sequence[Delivery]) -> None:
    """Mark ``deliveries`` settled: the transaction that deleted their rows has committed.

    Also for a delivery whose lease was lost (``LeaseLost``): its row is
    another consumer's now, and ``ack`` must not touch it.
    """
    for delivery in deliveries:
        if not isinstance(delivery, DatabaseDelivery):
            continue
        delivery.settled = True
        if delivery._consumer is not None:
            delivery._consumer._unacked.pop(delivery._pk, None)
