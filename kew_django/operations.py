"""What an operator can do to outbox messages and dead letters, as plain functions.

The admin calls these; so can a shell or a management command. Each one
runs in a single transaction and acts only on rows in the state it
applies to (a dead letter that is no longer DEAD is skipped, not
requeued twice), so two operators clicking at once do no harm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import router, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from kew.errors import KewError
from kew.providers.headers import application_properties
from kew_django.db.notify import OUTBOX
from kew_django.db.wake import wake_on_commit
from kew_django.models import DeadLetter, InProgress, InProgressRows, OutboxMessage
from kew_django.workers import sweep

DEAD = Q(state=DeadLetter.State.DEAD)
RETRYABLE = Q(status=OutboxMessage.Status.FAILED)
DISCARDABLE = Q(status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED])


class NotActionable(KewError):
    """The row is not in a state the operation applies to (e.g. already requeued)."""


@dataclass
class OperationResult:
    """The rows an operation changed, and how many selected rows it left alone."""

    changed: list = field(default_factory=list)
    skipped: int = 0
    created: list = field(default_factory=list)  # new outbox rows, for requeues


@dataclass(frozen=True)
class Preview:
    """What a bulk operation would do: rows it would act on, per queue, and rows skipped."""

    count: int
    skipped: int
    queues: dict[str, int]


def preview(queryset: QuerySet, actionable: Q) -> Preview:
    """Count, in one GROUP BY query, the selected rows an operation would act on."""
    rows = (
        queryset.order_by()
        .values("queue")
        .annotate(total=Count("pk"), acting=Count("pk", filter=actionable))
    )
    queues, count, total = {}, 0, 0
    for row in rows:
        total += row["total"]
        count += row["acting"]
        if row["acting"]:
            queues[row["queue"]] = row["acting"]
    return Preview(count=count, skipped=total - count, queues=dict(sorted(queues.items())))


def requeue_headers(headers: dict) -> dict:
    """Return a dead letter's headers for a fresh delivery: the application's only.

    Kew's own properties (``kew-`` prefix: the delivery count, when the
    first delivery failed) describe the old delivery; the new message
    starts again at delivery one.
    """
    return application_properties(headers or {})


def requeue_dead_letters(letters: QuerySet[DeadLetter] | Iterable[DeadLetter]) -> OperationResult:
    """Requeue every DEAD letter among ``letters`` as a new outbox message.

    In one transaction: each letter gets a new OutboxMessage (same queue,
    payload bytes, content type and headers, minus the delivery count;
    ``requeue_of`` = the letter's message id) and becomes REQUEUED with
    ``requeued_as`` = the new id. The relay publishes the new rows after
    the commit. Letters no longer DEAD are counted in ``skipped``.
    """
    return _requeue(_ids(letters), payload=None, content_type=None)


def requeue_dead_letter(
    letter: DeadLetter, *, payload: bytes | None = None, content_type: str | None = None
) -> OutboxMessage:
    """Requeue one DEAD letter, optionally with a replacement payload; return the new row.

    Raises NotActionable (and writes nothing) if the letter is not DEAD.
    """
    outcome = _requeue([letter.pk], payload=payload, content_type=content_type)
    if not outcome.created:
        raise NotActionable(f"dead letter {letter.pk} is not dead any more; nothing was requeued")
    letter.refresh_from_db()
    return outcome.created[0]


def discard_dead_letters(letters: QuerySet[DeadLetter] | Iterable[DeadLetter]) -> OperationResult:
    """Mark every DEAD letter among ``letters`` DISCARDED; they stay for the record."""
    ids = _ids(letters)
    with transaction.atomic(using=_db(DeadLetter)):
        rows = list(DeadLetter.objects.select_for_update().filter(DEAD, pk__in=ids))
        for letter in rows:
            letter.state = DeadLetter.State.DISCARDED
        DeadLetter.objects.bulk_update(rows, ["state"])
    return OperationResult(changed=rows, skipped=len(set(ids)) - len(rows))


def retry_outbox_messages(
    messages: QuerySet[OutboxMessage] | Iterable[OutboxMessage],
) -> OperationResult:
    """Make every FAILED message among ``messages`` PENDING again, due now, attempts reset.

    The relay picks the rows up on its next claim. Rows a relay holds
    locked right now are not FAILED, so they are skipped without waiting.
    """
    ids = _ids(messages)
    with transaction.atomic(using=_db(OutboxMessage)):
        rows = list(_lock_outbox(ids).filter(RETRYABLE))
        for message in rows:
            message.status = OutboxMessage.Status.PENDING
            message.attempts = 0
            message.deliver_at = None
        OutboxMessage.objects.bulk_update(rows, ["status", "attempts", "deliver_at"])
        wake_on_commit(OUTBOX, using=_db(OutboxMessage))
    return OperationResult(changed=rows, skipped=len(set(ids)) - len(rows))


def discard_outbox_messages(
    messages: QuerySet[OutboxMessage] | Iterable[OutboxMessage],
) -> OperationResult:
    """Mark every PENDING or FAILED message among ``messages`` DISCARDED, kept for audit.

    Rows a relay has claimed (locked) at this moment are skipped: they are
    being published, and discarding them now could not stop that.
    """
    ids = _ids(messages)
    with transaction.atomic(using=_db(OutboxMessage)):
        rows = list(_lock_outbox(ids).filter(DISCARDABLE))
        for message in rows:
            message.status = OutboxMessage.Status.DISCARDED
        OutboxMessage.objects.bulk_update(rows, ["status"])
    return OperationResult(changed=rows, skipped=len(set(ids)) - len(rows))


def _requeue(ids: Sequence, *, payload: bytes | None, content_type: str | None) -> OperationResult:
    db = _db(DeadLetter)
    with transaction.atomic(using=db):
        letters = list(
            DeadLetter.objects.using(db).select_for_update().filter(DEAD, pk__in=ids).order_by("pk")
        )
        now = timezone.now()
        created = [
            OutboxMessage(
                queue=letter.queue,
                payload=bytes(letter.payload) if payload is None else payload,
                content_type=content_type or letter.content_type,
                headers=requeue_headers(letter.headers),
                requeue_of=letter.message_id,
                created_at=now,
            )
            for letter in letters
        ]
        OutboxMessage.objects.using(db).bulk_create(created)
        wake_on_commit(OUTBOX, using=db)
        for letter, message in zip(letters, created, strict=True):
            letter.state = DeadLetter.State.REQUEUED
            letter.requeued_as = str(message.pk)
        DeadLetter.objects.using(db).bulk_update(letters, ["state", "requeued_as"])
    return OperationResult(changed=letters, skipped=len(set(ids)) - len(letters), created=created)


def _lock_outbox(ids: Sequence) -> QuerySet[OutboxMessage]:
    # NOTE: skip_locked is ignored on SQLite, which has no row locks (and one writer).
    return OutboxMessage.objects.select_for_update(skip_locked=True).filter(pk__in=ids)


def _ids(rows: QuerySet | Iterable) -> list:
    if isinstance(rows, QuerySet):
        return list(rows.order_by().values_list("pk", flat=True))
    return [row.pk for row in rows]


def _db(model) -> str:
    return router.db_for_write(model)


CANCELLABLE = Q(cancel_requested_at__isnull=True)


def cancel_in_progress(rows: QuerySet | Iterable, *, by: str = "admin") -> OperationResult:
    """Ask running messages to stop; each handler learns it at its next progress report.

    The flag is read by the worker's heartbeat (every few seconds); an
    ``atomic=False`` handler then gets ``Cancelled`` from ``work.progress``.
    Rows already asked, and rows of stopped workers (``stopped_in_progress``),
    are left alone (skipped).
    """
    ids = _ids(rows)
    objects = InProgress.objects.using(_db(InProgress))
    running = objects.running(sweep.stale_after())
    changed = list(running.filter(pk__in=ids).filter(CANCELLABLE))
    objects.filter(pk__in=[row.pk for row in changed]).update(
        cancel_requested_at=timezone.now(), cancel_requested_by=by[:150]
    )
    return OperationResult(changed=changed, skipped=len(ids) - len(changed))


def stopped_in_progress(rows: InProgressRows) -> list[InProgress]:
    """Delete and return the rows among ``rows`` whose worker stopped (no recent heartbeat).

    Their messages are not running: they come back to their queue when
    the provider sees the worker gone (``kew_django.workers.sweep``).
    """
    stopped = list(rows.stale(sweep.stale_after()))
    InProgress.objects.using(_db(InProgress)).filter(pk__in=[row.pk for row in stopped]).delete()
    return stopped
