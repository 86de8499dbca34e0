"""Test helpers for your own consumers: drain a queue on this thread, read its dead letters.

    from kew_django.testing import dead_letters, drain

    @pytest.mark.django_db(transaction=True)
    def test_a_thumbnail_is_made():
        thumbnails.send(Thumbnail(image_id=7))
        assert drain(thumbnails) == [DeliveryOutcome.HANDLED]
        assert not dead_letters(thumbnails).exists()

``drain`` runs the very worker that ``manage.py kew_consume`` runs (the
transaction, the idempotency record, retries, dead letters), only on the
calling thread and until the queue is empty, like dramatiq's
``StubBroker.join()``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from django.db import router
from django.db.models import QuerySet

from kew.message import Message
from kew.providers.base import Delivery, Provider
from kew.qchan.outcomes import DeliveryOutcome
from kew.schedule import Schedule
from kew_django.models import DeadLetter, ProcessedMessage
from kew_django.outbox.channel import Channel
from kew_django.outbox.committed import commit_publishers
from kew_django.providers import get_provider
from kew_django.relay.publisher import Relay
from kew_django.workers.heartbeat import Heartbeat
from kew_django.workers.progress import Work
from kew_django.workers.registry import ConsumerRegistry, ConsumerSpec, consumers
from kew_django.workers.worker import Worker

__all__ = ["DeliveryOutcome", "dead_letters", "drain", "work_for"]


def drain(
    queue: str | Channel[Any],
    *,
    provider: str | Provider = "default",
    relay: bool = True,
    retry_now: bool = False,
    registry: ConsumerRegistry | None = None,
    wait: float = 0.2,
    limit: int = 1000,
) -> list[DeliveryOutcome]:
    """Run ``queue``'s registered consumer on this thread until the queue is empty.

    Return what became of each delivery, in order. With ``relay`` the
    queue's committed outbox rows are published first (and those its
    senders publish on commit), and again whenever the queue runs dry, so
    messages the handler sends are drained too.
    Retries that are due come back within the same call; later ones stay
    queued, unless ``retry_now`` makes every retry due at once (the
    schedule keeps its length, so a consumer that always fails ends as a
    dead letter in one call). The queue counts as empty when no delivery
    comes within ``wait`` seconds; at most ``limit`` deliveries are handled.
    Handler exceptions never escape: they become retries and dead letters.
    """
    name = queue.queue if isinstance(queue, Channel) else queue
    spec = (registry or consumers).get(name)
    if retry_now:
        spec = _without_delays(spec)
    provider = get_provider(provider) if isinstance(provider, str) else provider
    relayer = Relay(provider, queues=[name], threads=1) if relay else None

    def publish() -> int:  # what this process publishes on commit, then what the relay would
        return commit_publishers.flush() + relayer.relay_all() if relayer is not None else 0

    publish()
    worker = Worker(spec, provider, poll_interval=wait)
    outcomes: list[DeliveryOutcome] = []
    try:
        with provider.receiver(name, prefetch=spec.prefetch) as receiver:
            while len(outcomes) < limit:
                delivery = receiver.receive(wait)
                if delivery is not None:
                    outcomes.append(worker.handle(delivery))
                elif not publish():
                    break
    finally:
        worker.close()
        worker.loop.close()  # an async def handler's event loop, if it started one
    return outcomes


def dead_letters(queue: str | Channel[Any]) -> QuerySet[DeadLetter]:
    """Return the dead letters of ``queue``, oldest first."""
    name = queue.queue if isinstance(queue, Channel) else queue
    return DeadLetter.objects.filter(queue=name).order_by("pk")


def _without_delays(spec: ConsumerSpec) -> ConsumerSpec:
    zeros = Schedule((timedelta(0),) * len(spec.schedule.intervals))
    return replace(spec, retry=zeros)


class _HeldDelivery(Delivery):
    """A delivery that exists only for ``work_for``: held for ever, acked into nothing."""

    def __init__(self, queue: str, message_id: str | None):
        self.queue, self.payload, self.message_id = queue, b"", message_id
        self.properties, self.redelivered = {}, False

    def ack(self) -> None:
        """Nothing to acknowledge."""


def work_for(
    queue: str, *, message_id: str | None = None, attempt: int = 1, cancelled: bool = False
) -> Work:
    """Return a ``Work`` to call an ``atomic=False`` handler directly in a test: ``h(data, work)``.

    Progress is kept in memory (``work.heartbeat``); ``cancelled=True`` makes
    the first progress report raise ``Cancelled``. ``commit()`` opens a
    transaction but records no message id.
    """
    using = router.db_for_write(ProcessedMessage)
    heartbeat = Heartbeat(_HeldDelivery(queue, message_id), queue=queue, using=using, interval=3600)
    if cancelled:
        heartbeat.cancelled.set()
    message = Message(None, message_id=message_id, delivery_count=attempt)
    return Work(message, heartbeat, using=using, record=False)
