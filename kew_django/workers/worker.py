"""Consumer workers: run each registered handler on its queue's deliveries.

For each delivery: decode it (undecodable: dead letter at once), run the
handler in ``transaction.atomic()`` and acknowledge after it returns. A
handler that raises or answers REPEAT is retried by re-sending the
message with a delivery time and a delivery count (``redeliver_after``,
so the retry's id is deterministic) and then acknowledging the original;
NACK is never used. When the schedule is exhausted, or the handler raises
``PermanentError``, the message becomes a DeadLetter row and the
consumer's ``on_exhausted`` handler is called once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from kew.backoff import Backoff
from kew.errors import DecodeError, KewError
from kew.message import Message
from kew.providers.base import CONTENT_TYPE, Delivery, Provider, Receiver
from kew.qchan import delivery_options, message_from
from kew.qchan.producers import LazyProducer
from kew.schedule import RepeatAction
from kew_django.workers import deadletters
from kew_django.db.connections import close_db_connections
from kew_django.errors import PermanentError
from kew_django.models import DeadLetter, ProcessedMessage
from kew_django.workers.registry import ConsumerSpec

log = logging.getLogger(__name__)


class DeliveryOutcome(Enum):
    """What became of one delivery."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"  # an idempotent consumer had handled this message id already
    RETRIED = "retried"
    DEAD = "dead"


@dataclass
class WorkerStats:
    """Counts of outcomes, shared by the threads of one queue."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[DeliveryOutcome, int] = field(
        default_factory=lambda: dict.fromkeys(DeliveryOutcome, 0)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: DeliveryOutcome) -> None:
        with self.lock:
            self.counts[outcome] += 1

    def line(self, queue: str) -> str:
        """Return one progress line for ``queue``."""
        with self.lock:
            done = sum(self.counts.values())
            parts = ", ".join(f"{n} {o.value}" for o, n in self.counts.items() if n)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        return f"consume {queue}: {done} deliveries ({rate:.1f}/s){': ' if parts else ''}{parts}"


class Worker:
    """Handle the deliveries of one queue with its registered consumer. One per thread."""

    def __init__(
        self,
        spec: ConsumerSpec,
        provider: Provider,
        *,
        using: str | None = None,
        poll_interval: float = 1.0,
        stats: WorkerStats | None = None,
    ):
        self.spec = spec
        self.provider = provider
        self.using = using or router.db_for_write(DeadLetter)
        self.poll_interval = poll_interval
        self.stats = stats or WorkerStats()
        self._producers = LazyProducer(self.provider)

    def handle(self, delivery: Delivery) -> DeliveryOutcome:
        """Handle one delivery and acknowledge it; return what became of it.

        Raises (leaving the delivery unacknowledged, so it comes back) only
        when the retry or the dead letter cannot be stored.
        """
        try:
            data = self.spec.codec.decode(delivery.payload)
        except DecodeError as error:
            return self._give_up(delivery, None, DeadLetter.Reason.UNDECODABLE, error)
        message = message_from(delivery, data)
        error: BaseException | None = None
        started = time.monotonic()
        try:
            outcome = self._run_handler(message)
        except PermanentError as permanent:
            return self._give_up(delivery, message, DeadLetter.Reason.FAILED, permanent)
        except Exception as failure:
            error = failure
            outcome = None
            connections[self.using].close_if_unusable_or_obsolete()
        if outcome is not None:
            delivery.ack()
            log.debug(
                "%s: message %s (delivery %d) %s in %.1f ms",
                self.spec.queue,
                message.message_id,
                message.delivery_count,
                outcome.value,
                (time.monotonic() - started) * 1000,
            )
            return outcome
        delay = self.spec.schedule.delay_after(message.delivery_count)
        if delay is None:
            return self._give_up(delivery, message, DeadLetter.Reason.EXHAUSTED, error)
        self._retry(delivery, message, delay)
        log.warning(
            "%s: message %s failed (delivery %d of %d), retry in %ss: %s",
            self.spec.queue,
            message.message_id,
            message.delivery_count,
            self.spec.schedule.max_deliveries,
            delay.total_seconds(),
            error if error is not None else "handler answered REPEAT",
        )
        return DeliveryOutcome.RETRIED

    def _run_handler(self, message: Message) -> DeliveryOutcome | None:
        """Run the handler in a transaction; None means it answered REPEAT.

        A handler that raises has its writes rolled back; one that answers
        REPEAT has them committed (it returned normally), but its message id
        is not recorded as processed, so the retry runs.
        """
        with transaction.atomic(using=self.using):
            record = self._record_processed(message) if self.spec.idempotent else None
            if record is False:
                return DeliveryOutcome.DUPLICATE
            action = self.spec.handler(message.data)
            if action is not RepeatAction.REPEAT:
                return DeliveryOutcome.HANDLED
            if record is not None:
                ProcessedMessage.objects.using(self.using).filter(pk=record.pk).delete()
        return None

    def _record_processed(self, message: Message) -> ProcessedMessage | bool | None:
        """Record the message id; return False if it was recorded before, None if it has none."""
        if not message.origin_id:
            return None
        try:
            with transaction.atomic(using=self.using):
                return ProcessedMessage.objects.using(self.using).create(
                    consumer=self.spec.queue, message_id=message.origin_id
                )
        except IntegrityError:
            return False

    def _retry(self, delivery: Delivery, message: Message, delay) -> None:
        """Send the next delivery of ``message``, then acknowledge this one."""
        retry = message.redeliver_after(delay)
        options = delivery_options(retry)
        properties = {
            **options.properties,
            deadletters.FIRST_FAILED_AT: delivery.properties.get(deadletters.FIRST_FAILED_AT)
            or timezone.now().isoformat(),
        }
        if CONTENT_TYPE in delivery.properties:
            properties[CONTENT_TYPE] = delivery.properties[CONTENT_TYPE]
        try:
            self._producers.get().send(
                self.spec.queue, delivery.payload, replace(options, properties=properties)
            )
        except KewError:
            self._producers.drop()
            raise
        delivery.ack()

    def _give_up(
        self, delivery: Delivery, message: Message | None, reason, error
    ) -> DeliveryOutcome:
        """Write a dead letter and call ``on_exhausted``, in one transaction; then ack."""
        message_id = (message.origin_id if message else None) or delivery.message_id
        count = message.delivery_count if message else message_from(delivery, None).delivery_count
        with transaction.atomic(using=self.using):
            if deadletters.already_recorded(delivery, message_id, count, self.using):
                log.info(
                    "%s: message %s was dead-lettered before its ack was lost",
                    self.spec.queue,
                    message_id,
                )
            else:
                letter = deadletters.record(
                    delivery,
                    reason=reason,
                    message_id=message_id,
                    attempts=count,
                    error=error,
                    using=self.using,
                )
                if self.spec.idempotent and message_id:
                    self._record_processed(message or message_from(delivery, None))
                if message is not None:
                    self._call_exhausted(message, error, letter)
        delivery.ack()
        log.error(
            "%s: message %s dead-lettered (%s) after %d delivery(ies): %s",
            self.spec.queue,
            message_id,
            reason,
            count,
            error,
        )
        return DeliveryOutcome.DEAD

    def _call_exhausted(self, message: Message, error, letter: DeadLetter) -> None:
        if self.spec.on_exhausted is None:
            return
        try:
            with transaction.atomic(using=self.using):
                self.spec.on_exhausted(message.data, error)
        except Exception as failure:
            log.exception(
                "%s: on_exhausted failed for message %s", self.spec.queue, message.message_id
            )
            letter.error = f"{letter.error}\non_exhausted failed: {failure!r}"[:10000]
            letter.save(update_fields=["error"])

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the delivery in hand is finished and acked first."""
        consumer: Receiver | None = None
        backoff = Backoff(30.0, what=f"queue {self.spec.queue!r}", logger=log)
        try:
            while not stop.is_set():
                try:
                    if consumer is None:
                        consumer = self.provider.receiver(
                            self.spec.queue, prefetch=self.spec.prefetch
                        )
                    delivery = consumer.receive(self.poll_interval)
                    if delivery is not None:
                        self.stats.add(self.handle(delivery))
                    backoff.succeeded()
                except Exception as error:  # noqa: BLE001 - the worker outlives any one message
                    backoff.failed(error)
                    log.debug("%s: worker error", self.spec.queue, exc_info=True)
                    consumer = _close(consumer)  # unacked deliveries come back
                    self._producers.drop()
                    connections[self.using].close_if_unusable_or_obsolete()
                    stop.wait(backoff.delay())
        finally:
            _close(consumer)
            self._producers.drop()
            close_db_connections()


def _close(consumer: Receiver | None) -> None:
    if consumer is not None:
        try:
            consumer.close()
        except Exception:  # noqa: BLE001
            log.debug("closing a consumer failed", exc_info=True)
