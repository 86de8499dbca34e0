"""Bring back what the broker itself dead-lettered: its dead-letter queue becomes DeadLetter rows.

Artemis moves a message that was delivered ``max-delivery-attempts``
times (10 by default) without an ack to its dead-letter address (``DLQ``
in the default ``broker.xml``), keeping where it came from in
``_AMQ_ORIG_ADDRESS`` / ``_AMQ_ORIG_QUEUE``. Kew's own retries never get
there, but a consumer process that keeps dying on a message does. The
drainer consumes that queue over STOMP, with a selector that takes only
messages of Kew's queues (others stay for whoever else reads the DLQ),
writes each as a ``DeadLetter`` (reason ``crashed``), calls its
consumer's ``on_exhausted`` in the same transaction (so the outcome is
recorded as for any message Kew gives up), and acks it after the row is
committed: a crash in between does it all once more at worst (it is
skipped if the same message is already recorded).

On RabbitMQ (with ``delivery_limit=`` in its URL) each queue has a
dead-letter queue of its own (``<queue>.dead``), which the provider's
``dead_letter_receiver`` consumes; nothing else changes.

``kew_consume`` and ``kew_run`` start one on its own thread when the
provider declares ``Capability.DEAD_LETTER_ADDRESS`` (Artemis, RabbitMQ with
a delivery limit) and
``KEW["CONSUMERS"]["BROKER_DEAD_LETTERS"]`` names the queue (``None``
turns it off).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence

from django.db import router, transaction

from kew.backoff import Backoff
from kew.errors import DecodeError
from kew.providers.base import Delivery, Provider, Receiver
from kew.providers.headers import DELIVERY_COUNT
from kew_django.db.connections import close_db_connections
from kew_django.models import DeadLetter
from kew_django.workers import deadletters
from kew_django.workers.crashes import CrashLoop
from kew_django.workers.registry import ConsumerSpec

log = logging.getLogger(__name__)
ORIGINAL_QUEUE = "_AMQ_ORIG_QUEUE"
ORIGINAL_ADDRESS = "_AMQ_ORIG_ADDRESS"


def selector(queues: Sequence[str]) -> str:
    """Return the Artemis filter that takes the messages of ``queues`` only."""
    quoted = ", ".join("'" + queue.replace("'", "''") + "'" for queue in queues)
    return f"{ORIGINAL_ADDRESS} IN ({quoted})"


class BrokerDeadLetters:
    """Turn the broker's dead letters for ``queues`` into DeadLetter rows. One per thread."""

    def __init__(
        self,
        provider: Provider,
        queues: Sequence[str],
        *,
        consumers: Mapping[str, ConsumerSpec] | None = None,
        dead_letter_queue: str = "DLQ",
        using: str | None = None,
        poll_interval: float = 1.0,
    ):
        self.provider = provider
        self.queues = list(queues)
        self.consumers = dict(consumers or {})
        self.dead_letter_queue = dead_letter_queue
        self.using = using or router.db_for_write(DeadLetter)
        self.poll_interval = poll_interval
        self._receiver: Receiver | None = None

    def drain(self, timeout: float = 0.0) -> int:
        """Record every dead letter waiting (the first wait up to ``timeout``); return how many."""
        count = 0
        while (delivery := self._receive(timeout if count == 0 else 0.2)) is not None:
            self.record(delivery)
            delivery.ack()
            count += 1
        return count

    def _receive(self, timeout: float) -> Delivery | None:
        if self._receiver is None:
            per_queue = getattr(self.provider, "dead_letter_receiver", None)
            if per_queue is not None:  # RabbitMQ: a dead-letter queue of each queue
                self._receiver = per_queue(self.queues)
            else:
                self._receiver = self.provider.receiver(  # type: ignore[call-arg]
                    self.dead_letter_queue, selector=selector(self.queues)
                )
        return self._receiver.receive(timeout)

    def record(self, delivery: Delivery) -> DeadLetter | None:
        """Write the dead letter of one DLQ delivery (not again if it is recorded already)."""
        headers = getattr(delivery, "headers", {})
        original = getattr(delivery, "original_queue", None)  # RabbitMQ's
        queue = original or headers.get(ORIGINAL_ADDRESS) or headers.get(ORIGINAL_QUEUE)
        queue = queue or delivery.queue
        if original:
            where, limit = delivery.queue, "x-delivery-limit"
        else:
            where, limit = self.dead_letter_queue, "max-delivery-attempts"
        message_id = (delivery.message_id or "").split("#")[0] or None
        attempts = int(delivery.properties.get(DELIVERY_COUNT, "1") or 1)
        with transaction.atomic(using=self.using):
            known = DeadLetter.objects.using(self.using).filter(
                queue=queue, message_id=message_id or "", error__startswith="moved by the broker"
            )
            if message_id and known.exists():
                return None
            letter = deadletters.record(
                delivery,
                reason=DeadLetter.Reason.CRASHED,
                message_id=message_id,
                attempts=attempts,
                error=(
                    f"moved by the broker to its dead-letter queue {where!r} "
                    f"after its {limit} (from {queue!r}): a consumer kept "
                    "ending without acknowledging it (crashed, killed, or disconnected)"
                ),
                using=self.using,
            )
            letter.queue = queue
            letter.save(update_fields=["queue"])
            self._call_exhausted(queue, delivery, letter)
        log.error("%s: the broker dead-lettered message %s; recorded", queue, message_id)
        return letter

    def _call_exhausted(self, queue: str, delivery: Delivery, letter: DeadLetter) -> None:
        """Call the queue's ``on_exhausted`` with the decoded data (not if undecodable)."""
        spec = self.consumers.get(queue)
        if spec is None or spec.on_exhausted is None:
            return
        try:
            data = spec.codec.decode(delivery.payload)
        except DecodeError:
            return  # the dead letter shows the raw bytes; there is no data to hand over
        error = CrashLoop(letter.error)
        try:
            with transaction.atomic(using=self.using):
                deadletters.call_exhausted(spec.on_exhausted, data, error, letter)
        except Exception as failure:
            log.exception("%s: on_exhausted failed for message %s", queue, letter.message_id)
            letter.error = f"{letter.error}\non_exhausted failed: {failure!r}"[:10000]
            letter.save(update_fields=["error"])

    def run(self, stop: threading.Event) -> None:
        """Drain until ``stop`` is set; errors back off and never end the thread."""
        backoff = Backoff(30.0, what=f"dead-letter queue {self.dead_letter_queue!r}", logger=log)
        try:
            while not stop.is_set():
                try:
                    self.drain(self.poll_interval)
                    backoff.succeeded()
                except Exception as error:  # noqa: BLE001 - the loop outlives any one message
                    backoff.failed(error)
                    self.close()
                    stop.wait(backoff.delay())
        finally:
            self.close()
            close_db_connections()

    def close(self) -> None:
        """Close the receiver; a delivery not acked goes back to the DLQ."""
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            try:
                receiver.close()
            except Exception:  # noqa: BLE001 - a broken receiver may fail to close
                log.debug("closing the dead-letter receiver failed", exc_info=True)
