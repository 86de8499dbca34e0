"""Group commit: handle the deliveries a worker holds in one database transaction.

A worker whose receiver holds several deliveries (``prefetch`` > 1) takes
what is in hand (``Receiver.receive_ready``; it never waits to fill a
batch), at most ``KEW["CONSUMERS"]["BATCH_SIZE"]`` of them (32: PostgreSQL
slows down everywhere once a transaction holds more than 64 savepoints that
wrote; check kew.W002), and handles
them in one transaction, each handler in a savepoint of its own with its
idempotency record (``Worker.run_in_transaction``; the first needs none,
and the commit releases the others: ``db.savepoints``). No handler starts once
the transaction is ``BATCH_TIME`` seconds old: the rest of the batch goes
in the next transaction. Then:

- One commit, then the acks, in order: a crash before the commit rolls
  every handler of the batch back (all come back), a crash after it
  finds their idempotency records (``idempotent=True``). Rows of the
  database provider on the worker's database are deleted inside the
  transaction instead: handled and acked commit together. If one of their
  leases ran out meanwhile the batch rolls back and each runs alone.
- A handler that raises has only its savepoint rolled back; one that
  answers RETRY keeps its writes but not its record, as when handled
  alone. After the commit each takes its own path (retry, release, dead
  letter and ``on_exhausted``: the engine's ``settle``).
- A redelivered delivery (it may be the one that killed the batch before)
  or one that does not decode is handled alone after the batch, as is
  every delivery of a batch whose transaction failed while the database
  answers (its commit, or a handler that broke the transaction itself).
- While the database is down the batch is held and run again when it is
  back (``workers.outage``): no attempt spent.

``atomic=False`` consumers never batch. Runs on the worker's thread; each
delivery of the batch has its heartbeat from when it is taken until its ack.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.db import DatabaseError, connections, transaction

from kew.errors import ConfigurationError, DecodeError
from kew.message import Message
from kew.providers.base import Delivery
from kew.providers.headers import message_from
from kew.qchan.observe import Handling
from kew.qchan.outcomes import DeliveryOutcome
from kew_django.conf import section
from kew_django.db.errors import DATABASE_ERRORS
from kew_django.providers.database import (
    DatabaseDelivery,
    LeaseLost,
    ack_in_transaction,
    acked_in_transaction,
)
from kew_django.workers.heartbeat import Heartbeat
from kew_django.workers.outage import database_down

if TYPE_CHECKING:
    from kew.qchan.observe import EngineObserver
    from kew.schedule import GiveUp
    from kew_django.workers.crashes import CrashCounter
    from kew_django.workers.outage import DatabaseGate
    from kew_django.workers.pacemaker import Pacemaker
    from kew_django.workers.registry import ConsumerSpec


class Worker(Protocol):
    """What a batch needs of the worker that runs it (``workers.worker.Worker``, passed in)."""

    spec: ConsumerSpec
    using: str
    queue: str
    heartbeat_interval: float
    gate: DatabaseGate
    crashes: CrashCounter
    pacemaker: Pacemaker | None
    observer: EngineObserver

    def decode(self, delivery: Delivery) -> Any: ...
    def screen(self, delivery: Delivery, message: Message[Any]) -> GiveUp | None: ...
    def recover(self, error: BaseException) -> None: ...
    def handle(self, delivery: Delivery) -> DeliveryOutcome: ...
    def held(self, limit: int) -> list[Delivery]: ...
    def counted(self, outcome: DeliveryOutcome) -> None: ...
    def ack_many(self, deliveries: list[Delivery]) -> None: ...
    def run_in_transaction(
        self, message: Message[Any], *, savepoint: bool = True
    ) -> DeliveryOutcome | None: ...

    def settle(
        self,
        delivery: Delivery,
        message: Message[Any],
        outcome: DeliveryOutcome | None,
        error: BaseException | None,
        *,
        started: float,
    ) -> DeliveryOutcome: ...


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLimits:
    """How large a batch may grow and how long its transaction may take new handlers."""

    size: int = 32  # KEW["CONSUMERS"]["BATCH_SIZE"]: 1 turns group commit off
    seconds: float = 0.05  # KEW["CONSUMERS"]["BATCH_TIME"]

    @classmethod
    def from_settings(cls) -> BatchLimits:
        """Return the limits of ``KEW["CONSUMERS"]``; ConfigurationError if one is out of range."""
        consumers = section("CONSUMERS")
        size = consumers.get("BATCH_SIZE", cls.size)
        seconds = consumers.get("BATCH_TIME", cls.seconds)
        where = "KEW['CONSUMERS']"
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigurationError(f"{where}['BATCH_SIZE'] must be >= 1, not {size!r}")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds > 0:
            raise ConfigurationError(f"{where}['BATCH_TIME'] must be > 0, not {seconds!r}")
        return cls(size, float(seconds))


@dataclass
class Item:
    """One delivery of a batch: its heartbeat, its observation, what became of its handler."""

    delivery: Delivery
    seen: Handling
    heartbeat: Heartbeat
    message: Message[Any] | None = None
    outcome: DeliveryOutcome | None = None
    error: BaseException | None = None
    started: float = 0.0
    stopped: bool = False  # its heartbeat


class TransactionLost(Exception):
    """A handler's failure left the batch's transaction unusable (no savepoint to roll back)."""


def handle(worker: Worker, first: Delivery, limits: BatchLimits) -> None:
    """Handle ``first`` and what the receiver holds besides, in as few transactions as allowed.

    Raises (what is not acked comes back) as ``QueueSink.handle`` does:
    when a retry or a give-up cannot be stored, or the database stays
    down until the worker is told to stop (``StorageUnavailable``).
    """
    deliveries = [first, *worker.held(limits.size - 1)]
    with ExitStack() as stack:
        items = [_take(worker, delivery, stack) for delivery in deliveries]
        try:
            _handle_items(worker, items, limits)
        finally:
            for item in items:
                _stop(item)


def _take(worker: Worker, delivery: Delivery, stack: ExitStack) -> Item:
    seen = Handling(worker.queue, delivery)
    stack.enter_context(worker.observer.handling(seen))
    beat = Heartbeat(
        delivery, queue=worker.spec.queue, using=worker.using, interval=worker.heartbeat_interval
    )
    return Item(delivery, seen, beat.start(pacemaker=worker.pacemaker))


def _handle_items(worker: Worker, items: list[Item], limits: BatchLimits) -> None:
    alone: list[Item] = []
    pending: deque[Item] = deque()
    for item in items:
        item.message = _decoded(worker, item.delivery)
        (pending if item.message is not None else alone).append(item)
    while pending:
        try:
            ran = worker.gate.through(lambda: _transaction(worker, pending, limits.seconds))
        except (TransactionLost, DatabaseError) as error:  # and the database answers
            log.warning("%s: a batch failed as a whole (%s); each runs alone", worker.queue, error)
            alone[:0] = pending
            break
        for _ in ran:
            pending.popleft()
        if _settle(worker, ran):  # a failure was released: the receiver gave back the rest
            _give_back(worker, [*pending, *alone])
            return
    for item in alone:
        _stop(item)
        _counted(worker, item, worker.handle(item.delivery))


def _decoded(worker: Worker, delivery: Delivery) -> Message[Any] | None:
    """Return the message a batch can run, or None: handled alone (redelivered, undecodable)."""
    if delivery.redelivered:
        return None
    try:
        message = message_from(delivery, worker.decode(delivery))
    except DecodeError:
        return None
    return None if worker.screen(delivery, message) is not None else message


def _transaction(worker: Worker, pending: Sequence[Item], seconds: float) -> list[Item]:
    """Run handlers of ``pending`` in one transaction until ``seconds`` pass; return those run.

    Rows of the database provider on the worker's own database are acked
    (deleted) in that transaction, so they commit with the handlers' writes.
    The first handler runs without a savepoint: the transaction holds
    nothing else yet, so if it raises the whole transaction is rolled back
    and it alone is returned, to take its own path.
    """
    ran: list[Item] = []
    connection = connections[worker.using]
    try:
        with transaction.atomic(using=worker.using):
            began = time.monotonic()
            for item in pending:
                if ran and time.monotonic() - began >= seconds:
                    break
                _run(worker, item, savepoint=bool(ran))
                ran.append(item)
                if item.error is not None and connection.needs_rollback:
                    if len(ran) == 1:
                        raise _FirstFailed
                    if isinstance(item.error, DATABASE_ERRORS):
                        raise item.error  # the gate tells an outage from the handler's failure
                    raise TransactionLost(f"message {item.delivery.message_id}: {item.error!r}")
            acked = _ack_in_transaction(worker, ran)
    except _FirstFailed:
        first = ran[0]
        if isinstance(first.error, DATABASE_ERRORS) and database_down(worker.using):
            raise first.error from None  # the gate holds the batch and runs it again
        return ran  # rolled back: its failure is settled as when handled alone
    acked_in_transaction(acked)
    return ran


class _FirstFailed(Exception):
    """The batch's first handler raised without a savepoint: roll the transaction back."""


def _ack_in_transaction(worker: Worker, ran: list[Item]) -> list[DatabaseDelivery]:
    handled = [item for item in ran if item.outcome is not None]
    for item in handled:
        item.heartbeat.finishing()  # a renewal waiting on the row deleted here is not a loss
    try:
        return ack_in_transaction(worker.using, [item.delivery for item in handled])
    except LeaseLost as lost:
        raise TransactionLost(str(lost)) from lost


def _run(worker: Worker, item: Item, *, savepoint: bool) -> None:
    assert item.message is not None
    item.outcome, item.error = None, None
    item.started = time.monotonic()
    try:
        item.outcome = worker.run_in_transaction(item.message, savepoint=savepoint)
    except Exception as failure:  # noqa: BLE001 - the handler's own: settled after the commit
        item.error = failure


def _settle(worker: Worker, ran: list[Item]) -> bool:
    """After the commit: ack what was handled, together, then take each failure's path.

    Return whether a failure was released (the receiver is closed then).
    """
    handled = [item for item in ran if item.outcome is not None]
    for item in handled:
        _stop(item)  # no renewal racing the ack
    worker.ack_many([item.delivery for item in handled])
    log.debug("%s: %d of a batch of %d handled and acked", worker.queue, len(handled), len(ran))
    released = False
    for item in ran:
        assert item.message is not None
        outcome = item.outcome
        if outcome is None:
            if item.error is not None:
                worker.recover(item.error)
            outcome = worker.settle(item.delivery, item.message, None, item.error, started=0)
        _stop(item)
        worker.crashes.ended(item.delivery, outcome)
        _counted(worker, item, outcome)
        released = released or outcome is DeliveryOutcome.RELEASED
    return released


def _give_back(worker: Worker, items: list[Item]) -> None:
    """Count deliveries the closed receiver gave back unrun (they come back, no attempt spent)."""
    for item in items:
        _stop(item)
        worker.crashes.ended(item.delivery, DeliveryOutcome.RELEASED)
        _counted(worker, item, DeliveryOutcome.RELEASED)


def _stop(item: Item) -> None:
    if not item.stopped:
        item.stopped = True
        item.heartbeat.stop()


def _counted(worker: Worker, item: Item, outcome: DeliveryOutcome) -> None:
    item.seen.outcome = outcome
    worker.counted(outcome)
