"""Long work: run a handler outside any transaction (``@consumer(..., atomic=False)``).

Use it for handlers that run longer than a second or so (an import of a
large data set): the default mode holds one database transaction from the
handler's start to its end, which on SQLite blocks every other writer
(the web's requests, the relay) for as long, and on PostgreSQL keeps row
locks and an old snapshot. Here the handler runs in autocommit, gets a
``Work`` (``kew_django.workers.progress``) and commits in short
transactions of its own:

- Writes made during the work (an attempt counter, a partial result)
  commit at once and are not undone if the handler fails.
- The final effect goes in ``with work.commit():``, which for an
  ``idempotent=True`` consumer records the message id in the same
  transaction. A crash before that commit delivers the message again and
  the work is repeated; a crash after it (before the ack) finds the id
  recorded and acks the redelivery as DUPLICATE: one effect either way.
  A handler that returns without calling ``commit`` gets its id recorded
  after it returns, in a transaction of its own (nothing of its effects
  is then covered).
- ``Cancelled`` (from ``work.progress``) left uncaught gives the message
  up at once as a dead letter, reason ``cancelled``; caught, the handler
  records what it likes and returns, and the message is acked.
- ``Interrupted`` (from ``work.progress`` once the process is shutting
  down): the worker gives the delivery back unacked, its delivery count
  unchanged, to run again elsewhere (``Worker.handle``).
- ``LeaseLost``: the run stops without committing; the delivery is left
  to the worker that took it over (outcome RELEASED, its late ack is a
  logged no-op).

The ack comes after the handler returns, as in the default mode; the
heartbeat keeps the lease until then. Runs on the worker's thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction

from kew.message import Message
from kew.qchan.outcomes import DeliveryOutcome
from kew.schedule import RepeatAction
from kew_django.models import ProcessedMessage
from kew_django.workers.heartbeat import Heartbeat
from kew_django.workers.progress import AlreadyProcessed, LeaseLost, Work, record_processed
from kew_django.workers.registry import ConsumerSpec

log = logging.getLogger(__name__)


def run_outside(
    spec: ConsumerSpec,
    message: Message[Any],
    heartbeat: Heartbeat,
    *,
    using: str,
    stopping: threading.Event | None = None,
) -> DeliveryOutcome | None:
    """Run ``spec``'s handler as ``handler(data, work)`` in autocommit; None: retry it.

    ``Interrupted`` propagates (``stopping`` was set: the worker is shutting down).
    """
    record = spec.idempotent and bool(message.origin_id)
    processed = ProcessedMessage.objects.using(using)
    if record and processed.seen(spec.queue, message.origin_id or ""):
        return DeliveryOutcome.DUPLICATE
    work = Work(message, heartbeat, using=using, record=record, stopping=stopping)
    try:
        answer = spec.handler(message.data, work)
    except AlreadyProcessed:
        return DeliveryOutcome.DUPLICATE
    except LeaseLost:
        log.warning(
            "%s: message %s left to the worker that took it over", spec.queue, message.message_id
        )
        return DeliveryOutcome.RELEASED
    if answer is RepeatAction.RETRY:
        if work.recorded is not None:  # committed, yet asks again: let the retry run
            processed.forget(work.recorded)
        return None
    if record and work.recorded is None:
        try:
            with transaction.atomic(using=using):
                record_processed(spec.queue, message, using)
        except AlreadyProcessed:
            return DeliveryOutcome.DUPLICATE
    return DeliveryOutcome.HANDLED
