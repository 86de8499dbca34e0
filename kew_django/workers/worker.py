"""Consumer workers: the core queue engine, with Django's hooks filled in.

``Worker`` is ``kew.qchan.QueueSink`` (read its module docstring for the
rules: when the ack happens, what is retried, when Kew gives up); this
module only says how each step is done in Django:

- ``run_handler``: the handler runs in ``transaction.atomic()``; with
  ``idempotent=True`` the message's origin id is recorded as a
  ``ProcessedMessage`` in the same transaction, and a message recorded
  before is acked without running the handler (DUPLICATE). A handler that
  raises has its writes rolled back; one that answers RETRY keeps them,
  but its id is not recorded, so the retry runs.
- ``screen``: a redelivered message is counted (``workers.crashes``); one
  whose worker died more than ``MAX_CRASHES`` times is given up unrun.
- ``recover``: after a failure the database connection is replaced if it
  broke (``close_if_unusable_or_obsolete``).
- ``give_up``: a ``DeadLetter`` row (raw payload, headers, error,
  traceback, attempts) and ``on_exhausted(data, error)`` (with the letter
  as a third argument if the hook is marked ``@deadletters.takes_dead_letter``),
  in one transaction, before the ack. A delivery whose ack was lost after that
  finds its dead letter and does not call ``on_exhausted`` again.
- ``stopped``: the thread's database connections are closed.
- ``async def`` handlers and ``on_exhausted`` hooks are awaited on the
  worker's own event loop, in the same transaction (``workers.coroutines``).
- ``handle``: a ``Heartbeat`` (``workers.heartbeat``) renews the lease and
  publishes the delivery's state while it is handled, until after the ack;
  its beats run on the worker's one ``Pacemaker`` thread (``run``).
- ``atomic=False`` consumers run outside any transaction, with a ``Work``
  for progress, cancellation and their own short commit (``workers.long``);
  once the worker is told to stop, ``work.progress`` raises ``Interrupted``
  and the delivery is given back unacked (RELEASED, no attempt spent).
- A consumer with a ``limit`` waits for a slot before its handler runs, or
  parks the message when its key is full (``kew_django.limits.gate``): no
  attempt is spent; the slot is renewed by the heartbeat, given back after the ack.
- A database outage (a database error while the database cannot be
  reached) is not the handler's failure: the delivery is held and the
  step run again when the database is back (``workers.outage``).
- ``dispatch``: with ``prefetch`` > 1 the deliveries the receiver holds
  are handled in one transaction, each handler in a savepoint, and acked
  after its commit (group commit, ``workers.batch``).

Each worker runs on one thread (``kew_django.runner``), which calls the
handler; never a provider's I/O thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connections, router, transaction

from kew.message import Message
from kew.providers.base import Delivery, Provider
from kew.providers.headers import delivery_count
from kew.qchan.engine import QueueSink
from kew.qchan.observe import EngineObserver
from kew.qchan.outcomes import DeliveryOutcome, WorkerStats
from kew.schedule import GiveUp, GiveUpReason, RepeatAction, Schedule
from kew_django.conf import section
from kew_django.db.connections import close_db_connections
from kew_django.db.savepoints import kept_savepoint
from kew_django.limits.gate import Gate, GatedDelivery, gate_for
from kew_django.models import DeadLetter, ProcessedMessage
from kew_django.providers.database import LeaseLost, ack_in_transaction, acked_in_transaction
from kew_django.workers import batch, deadletters, long
from kew_django.workers.coroutines import HandlerLoop
from kew_django.workers.crashes import CrashCounter
from kew_django.workers.heartbeat import Heartbeat
from kew_django.workers.outage import DatabaseGate
from kew_django.workers.pacemaker import Pacemaker
from kew_django.workers.progress import Cancelled, Interrupted
from kew_django.workers.registry import ConsumerSpec

__all__ = ["DeliveryOutcome", "Worker", "WorkerStats"]

log = logging.getLogger(__name__)


class Worker(QueueSink[Any]):
    """Handle the deliveries of one queue with its registered consumer. One per thread."""

    def __init__(
        self,
        spec: ConsumerSpec,
        provider: Provider,
        *,
        using: str | None = None,
        poll_interval: float = 1.0,
        stats: WorkerStats | None = None,
        observer: EngineObserver | None = None,
    ):
        super().__init__(
            provider,
            spec.queue,
            spec.handler,
            codec=spec.codec,
            retry=spec.schedule,
            on_exhausted=spec.on_exhausted,
            prefetch=spec.prefetch,
            poll_interval=poll_interval,
            stats=stats,
            observer=observer,
        )
        self.spec = spec
        self.using = using or router.db_for_write(DeadLetter)
        self.heartbeat_interval = float(section("CONSUMERS").get("HEARTBEAT", 5.0))
        self.heartbeat: Heartbeat | None = None
        self.delivery: Delivery | None = None  # the one ``handle`` runs (not a batch's)
        self.pacemaker: Pacemaker | None = None  # while ``run`` runs
        self.gate = DatabaseGate(self.using, what=f"consumer of {spec.queue!r}")
        limit = int(section("CONSUMERS").get("MAX_CRASHES", 3))
        self.crashes = CrashCounter(spec.queue, self.using, limit, self.gate.through)
        # Limits (kew_django.limits): a slot before the handler; parked messages first.
        self.limits: Gate | None = gate_for(
            spec.queue, spec.limit, spec.key, codec=spec.codec, using=self.using, observer=observer
        )
        if self.limits is not None:
            self.provider = self.limits.provider(provider)
        self.loop = HandlerLoop(spec.queue)  # for async def handlers (``workers.coroutines``)
        self.batch_limits = batch.BatchLimits.from_settings()

    def dispatch(self, delivery: Delivery) -> None:
        """Handle ``delivery`` with what the receiver holds in one transaction (``workers.batch``).

        Alone when group commit cannot apply: long work (``atomic=False``),
        ``prefetch`` or ``BATCH_SIZE`` 1, a consumer with a limit (each start
        takes its slot in ``handle``), a redelivered delivery, or the worker
        is stopping.
        """
        alone = not self.spec.atomic or min(self.spec.prefetch, self.batch_limits.size) < 2
        alone = alone or self.limits is not None
        if alone or delivery.redelivered or self.gate.stop.is_set():
            super().dispatch(delivery)
        else:
            batch.handle(self, delivery, self.batch_limits)

    def handle(self, delivery: Delivery) -> DeliveryOutcome:
        """Handle one delivery (see the engine) with a heartbeat running until after its ack."""
        if self.gate.stop.is_set():  # received as the worker was told to stop: not started
            self.close()  # so it goes back untouched, with the prefetched ones
            self.crashes.ended(delivery, DeliveryOutcome.RELEASED)
            return DeliveryOutcome.RELEASED
        if self.limits is not None:
            delivery = self.limits.wrap(delivery)  # its heartbeat renews the slot too
        beat = Heartbeat(
            delivery, queue=self.spec.queue, using=self.using, interval=self.heartbeat_interval
        )
        self.heartbeat = beat.start(eager=not self.spec.atomic, pacemaker=self.pacemaker)
        self.delivery = delivery
        try:
            if self.admitted(delivery):
                outcome = super().handle(delivery)
            else:
                outcome = DeliveryOutcome.PARKED
        except Interrupted:
            log.info("%s: message %s given back: shutting down", self.spec.queue, beat.message_id)
            self.close()  # the unacked delivery goes back, its delivery count unchanged
            outcome = DeliveryOutcome.RELEASED
        finally:
            self.heartbeat, self.delivery = None, None
            beat.stop()
            if isinstance(delivery, GatedDelivery) and self.limits is not None:
                self.limits.release(delivery)
        if outcome is not DeliveryOutcome.PARKED:
            self.crashes.ended(delivery, outcome)
        return outcome

    def admitted(self, delivery: Delivery) -> bool:
        """Wait until the consumer's limits let ``delivery`` start; False: it was parked."""
        if self.limits is None or not isinstance(delivery, GatedDelivery):
            return True
        return self.limits.admit(delivery, self.gate.stop)

    def screen(self, delivery: Delivery, message: Message[Any]) -> GiveUp | None:
        """Give up on a redelivered message whose worker died too often (``workers.crashes``)."""
        return self.crashes.screen(delivery)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set (``QueueSink.run``); a database outage is waited out."""
        self.gate.stop = stop
        self.pacemaker = Pacemaker(f"kew-heartbeat-{self.spec.queue}")
        try:
            super().run(stop)
        finally:
            self.pacemaker.close()
            self.pacemaker = None

    def run_handler(self, message: Message[Any]) -> DeliveryOutcome | None:
        """Run the handler in a transaction, with the idempotency record; None: retry it.

        While the database is down the delivery is held and the handler run
        again when it is back (``kew_django.workers.outage``): no attempt spent.
        """
        if not self.spec.atomic and self.heartbeat is not None:
            return long.run_outside(
                self.spec, message, self.heartbeat, using=self.using, stopping=self.gate.stop
            )
        delivery = self.delivery
        return self.gate.through(lambda: self.run_in_transaction(message, delivery))

    def run_in_transaction(
        self, message: Message[Any], delivery: Delivery | None = None, *, savepoint: bool = True
    ) -> DeliveryOutcome | None:
        """Run the handler in a transaction (a batch's savepoint) with its idempotency record.

        ``delivery``, a database-provider row on this worker's database, is
        acked in the same transaction (``ack_in_transaction``): handled and
        acked commit together. If its lease ran out and another consumer
        took it, the handler's writes are rolled back and DUPLICATE returned.
        In a batch's transaction the savepoint is left for the commit to
        release (``kept_savepoint``); ``savepoint=False`` runs without one,
        for the batch's first handler: if it raises, the transaction is
        marked for rollback (``needs_rollback``), for the batch to end.
        """
        connection = connections[self.using]
        own = [] if delivery is None or connection.in_atomic_block else [delivery]
        block = (
            (kept_savepoint(self.using) if savepoint else transaction.atomic(self.using, False))
            if connection.in_atomic_block
            else transaction.atomic(using=self.using)
        )
        try:
            with block:
                outcome = self._run_and_record(message)
                if outcome is not None and own and self.heartbeat is not None:
                    self.heartbeat.finishing()  # a renewal waiting on the deleted row: no loss
                acked = ack_in_transaction(self.using, own) if outcome is not None and own else []
        except LeaseLost:
            log.warning(
                "%s: the lease of message %s is no longer this consumer's (it ran out, "
                "or a database crash lost it); "
                "its handler's writes were rolled back",
                self.spec.queue,
                message.message_id,
            )
            acked_in_transaction(own)  # another consumer's now: no ack
            return DeliveryOutcome.DUPLICATE
        acked_in_transaction(acked)
        return outcome

    def _run_and_record(self, message: Message[Any]) -> DeliveryOutcome | None:
        processed = ProcessedMessage.objects.using(self.using)
        record = None
        if self.spec.idempotent and message.origin_id:
            record = processed.record(self.spec.queue, message.origin_id)
            if record is None:
                return DeliveryOutcome.DUPLICATE
        answer = self.loop.resolve(self.spec.call(message))
        if answer is not RepeatAction.RETRY:
            return DeliveryOutcome.HANDLED
        if record is not None:
            processed.forget(record)
        return None

    def schedule_for(self, message: Message[Any]) -> Schedule:
        """Return the consumer's retry schedule for ``message`` (``ConsumerSpec.schedule_for``)."""
        return self.spec.schedule_for(message)

    def recover(self, error: BaseException) -> None:
        """Replace the database connection if the failure broke it.

        Not inside an outer transaction (a test's, see ``kew_django.testing``):
        closing the connection there would end that transaction.
        """
        connection = connections[self.using]
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()

    def give_up(
        self,
        delivery: Delivery,
        message: Message[Any] | None,
        reason: GiveUpReason,
        error: BaseException | None,
    ) -> None:
        """Write a dead letter and call ``on_exhausted``, in one transaction (the ack follows)."""
        self.gate.through(lambda: self._write_dead_letter(delivery, message, reason, error))

    def _write_dead_letter(
        self,
        delivery: Delivery,
        message: Message[Any] | None,
        reason: GiveUpReason,
        error: BaseException | None,
    ) -> None:
        message_id = (message.origin_id if message else None) or delivery.message_id
        count = message.delivery_count if message else delivery_count(delivery)
        with transaction.atomic(using=self.using):
            if deadletters.already_recorded(delivery, message_id, count, self.using):
                log.info(
                    "%s: message %s was dead-lettered before its ack was lost",
                    self.spec.queue,
                    message_id,
                )
                return
            letter = deadletters.record(
                delivery,
                reason=(
                    DeadLetter.Reason.CANCELLED
                    if isinstance(error, Cancelled)
                    else DeadLetter.Reason(reason.value)
                ),
                message_id=message_id,
                attempts=count,
                error=error,
                using=self.using,
            )
            origin = (message or Message(None, message_id=message_id)).origin_id
            if self.spec.idempotent and origin:
                ProcessedMessage.objects.using(self.using).record(self.spec.queue, origin)
            if message is not None:
                self._call_exhausted(message, error, letter)

    def _call_exhausted(
        self, message: Message[Any], error: BaseException | None, letter: DeadLetter
    ) -> None:
        if self.spec.on_exhausted is None:
            return
        try:
            with transaction.atomic(using=self.using):
                self.loop.resolve(
                    deadletters.call_exhausted(self.spec.on_exhausted, message.data, error, letter)
                )
        except Exception as failure:
            log.exception(
                "%s: on_exhausted failed for message %s", self.spec.queue, message.message_id
            )
            letter.error = f"{letter.error}\non_exhausted failed: {failure!r}"[:10000]
            letter.save(update_fields=["error"])

    def stopped(self) -> None:
        """Close the handlers' event loop and this thread's database connections."""
        self.loop.close()
        close_db_connections()
