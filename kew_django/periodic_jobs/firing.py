"""Fire one tick of a periodic job: exactly once across processes, in one transaction.

The job's row is the lock: a conditional UPDATE moves ``done_until`` to
the tick only if it is still before it, only if the job is not paused and
only if the tick is due by the database's clock. The process whose UPDATE
changed the row writes the tick's message in the same transaction; a
second process's UPDATE matches no row (PostgreSQL re-reads the row after
the first commits; SQLite serialises writers), so it writes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.fields import DateTimeField
from django.db.models.functions import Now
from django.db.models.lookups import LessThanOrEqual

from kew_django.models import OutboxMessage, PeriodicJob, QueuedMessage
from kew_django.outbox.channel import Channel
from kew_django.periodic_jobs.registry import PeriodicSpec

TICKS = uuid.UUID("5d0a1c3e-8a52-4f0e-9a3c-6b7a0b9e2f41")  # the namespace of tick ids


def tick_id(name: str, tick: datetime) -> uuid.UUID:
    """Return the message id of ``tick`` of job ``name``: the same in every process."""
    return uuid.uuid5(TICKS, f"{name}@{tick.isoformat()}")


def fire(spec: PeriodicSpec, tick: datetime, *, using: str, send: bool = True) -> bool:
    """Handle ``tick`` of ``spec``; return whether this call did it (False: another process had).

    ``send=False`` skips the tick (the catch-up policy): ``done_until``
    moves, nothing is written. A failure of the job's own code (``build``,
    the task's enqueue) rolls the transaction back and raises: the tick
    stays due and is tried again at the ticker's next turn.
    """
    with transaction.atomic(using=using):
        claimed = (
            PeriodicJob.objects.using(using)
            .filter(name=spec.name, paused=False, done_until__lt=tick)
            .filter(LessThanOrEqual(Value(tick, output_field=DateTimeField()), Now()))
            .update(**_bookkeeping(tick, send))
        )
        if claimed and send:
            run_tick(spec, tick, using=using)
    return bool(claimed)


def _bookkeeping(tick: datetime, send: bool) -> dict[str, Any]:
    if not send:
        return {"done_until": tick}
    return {
        "done_until": tick,
        "last_tick": tick,
        "last_fired_at": Now(),
        "fired": F("fired") + 1,
    }


def run_tick(spec: PeriodicSpec, tick: datetime, *, using: str) -> None:
    """Do what a tick of ``spec`` does, in the caller's transaction on ``using``."""
    if spec.task is not None:
        spec.task.enqueue()  # the Kew task backend joins this transaction
        return
    assert spec.channel is not None and spec.build is not None  # @periodic made sure
    send_tick(spec.channel, spec.build(tick), message_id=tick_id(spec.name, tick), using=using)


def send_tick(channel: Channel[Any], data: Any, *, message_id: uuid.UUID, using: str) -> None:
    """Send ``data`` to ``channel`` as the message ``message_id``, in the caller's transaction."""
    row = channel.send(data, using=using)
    # NOTE: Channel.send takes no message id yet; the row is given the tick's id
    # in the same transaction, so brokers' duplicate detection and idempotent
    # consumers see one id per tick. Replace with an id option when the outbox has one.
    if isinstance(row, QueuedMessage):  # a direct send: the queue row itself
        queued = QueuedMessage.objects.using(using)
        queued.filter(queue=row.queue, message_id=row.message_id).update(message_id=str(message_id))
    else:
        OutboxMessage.objects.using(using).filter(pk=row.pk).update(id=message_id)
