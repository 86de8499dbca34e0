"""The outbox, dead letters, processed-message records, the database queue, work in progress."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connections, models, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from kew_django.db.returning import concrete_field, updates_return_rows


class OutboxMessage(models.Model):
    """A message written in the sender's transaction, published later by the relay.

    The row's id is the message id: the relay hands it to the broker as the
    duplicate-detection id, so a row published twice is stored once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Discarded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    queue = models.CharField(max_length=200)
    payload = models.BinaryField()
    content_type = models.CharField(max_length=100, default="application/json")
    headers = models.JSONField(default=dict, blank=True)
    deliver_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A rejected row backs off: the relay does not claim it again before this time.
    # the relay leaves the row until then: a rejection's back-off, or (publishing on
    # commit) GRACE, while its sender publishes it
    retry_at = models.DateTimeField(null=True, blank=True)
    requeue_of = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "outbox message"
        indexes = [
            # The relay's claim query: pending rows, oldest first.
            models.Index(
                fields=["created_at", "id"],
                name="kew_outbox_pending_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["queue", "status"], name="kew_outbox_queue_status_idx"),
            models.Index(fields=["status", "sent_at"], name="kew_outbox_status_sent_idx"),
        ]
        permissions = [
            ("retry_outboxmessage", "Can retry outbox messages"),
            ("discard_outboxmessage", "Can discard outbox messages"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.id} ({self.status})"

    @property
    def message_id(self) -> str:
        """Return the id consumers see, as ``QueuedMessage.message_id`` of a direct send."""
        return str(self.id)


class DeadLetter(models.Model):
    """A message a consumer gave up on, kept with its raw payload for inspection."""

    class Reason(models.TextChoices):
        FAILED = "failed", "Handler failed permanently"
        UNDECODABLE = "undecodable", "Undecodable payload"
        EXHAUSTED = "exhausted", "Retries exhausted"
        CANCELLED = "cancelled", "Cancelled by an operator"
        CRASHED = "crashed", "Its worker kept dying"

    class State(models.TextChoices):
        DEAD = "dead", "Dead"
        REQUEUED = "requeued", "Requeued"
        DISCARDED = "discarded", "Discarded"

    queue = models.CharField(max_length=200)
    message_id = models.CharField(max_length=64, db_index=True, blank=True)
    payload = models.BinaryField()
    content_type = models.CharField(max_length=100, default="application/json")
    headers = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DEAD)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    requeued_as = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "dead letter"
        indexes = [
            models.Index(fields=["state", "last_failed_at"], name="kew_dead_state_failed_idx"),
            models.Index(fields=["queue", "state"], name="kew_dead_queue_state_idx"),
        ]
        permissions = [
            ("requeue_deadletter", "Can requeue dead letters"),
            ("discard_deadletter", "Can discard dead letters"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.message_id} ({self.reason}, {self.state})"


class ProcessedMessages(models.QuerySet["ProcessedMessage"]):
    """The idempotency record's operations: ``ProcessedMessage.objects.using(db).seen(...)``."""

    def seen(self, queue: str, message_id: str) -> bool:
        """Return whether the consumer of ``queue`` recorded ``message_id`` as handled."""
        return self.filter(consumer=queue, message_id=message_id).exists()

    def record(self, queue: str, message_id: str) -> ProcessedMessage | None:
        """Record ``message_id`` as handled by ``queue``'s consumer; None if it was before.

        Part of the caller's transaction, so the record commits with the
        handler's writes; a duplicate leaves that transaction usable (one
        ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite, a
        savepoint elsewhere).
        """
        record = self.model(consumer=queue, message_id=message_id, processed_at=timezone.now())
        connection = connections[self.db]
        if updates_return_rows(connection):
            with connection.cursor() as cursor:
                cursor.execute(_record_sql(connection), _record_params(record, connection))
                found = cursor.fetchone()
            if found is None:
                return None
            record.pk = found[0]
            record._state.adding, record._state.db = False, self.db
            return record
        try:
            with transaction.atomic(using=self.db):
                record.save(using=self.db, force_insert=True)
                return record
        except IntegrityError:
            return None

    def forget(self, record: ProcessedMessage) -> None:
        """Delete ``record``, so that the message is handled again when it comes back."""
        self.filter(pk=record.pk).delete()


def _record_sql(connection) -> str:
    meta, quote = ProcessedMessage._meta, connection.ops.quote_name
    model = ProcessedMessage
    columns = ", ".join(quote(concrete_field(model, name).column) for name in _RECORDED)
    unique = ", ".join(quote(concrete_field(model, n).column) for n in ("consumer", "message_id"))
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES (%s, %s, %s) "
        f"ON CONFLICT ({unique}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )


def _record_params(record: ProcessedMessage, connection) -> list[Any]:
    return [
        concrete_field(ProcessedMessage, name).get_db_prep_save(getattr(record, name), connection)
        for name in _RECORDED
    ]


_RECORDED = ("consumer", "message_id", "processed_at")


class CrashCounts(models.QuerySet["CrashCount"]):
    """Count deliveries that ended without an outcome: ``CrashCount.objects.using(db)``."""

    def started_again(self, queue: str, message_id: str) -> int:
        """Count one more crash of a redelivered message, unless it was released; return the count.

        Commits on its own (before the handler runs), so the count outlives
        the process if this delivery kills it too.
        """
        with transaction.atomic(using=self.db):
            row, created = self.select_for_update().get_or_create(
                queue=queue, message_id=message_id, defaults={"crashes": 1}
            )
            if created:
                return 1
            if row.released:  # the delivery before was handed back on purpose, not lost
                row.released = False
            else:
                row.crashes += 1
            row.save(update_fields=["crashes", "released", "updated_at"])
            return row.crashes

    def released(self, queue: str, message_id: str) -> None:
        """Note that a delivery went back on purpose (a shutdown): its next one is no crash."""
        self.update_or_create(queue=queue, message_id=message_id, defaults={"released": True})

    def ended(self, queue: str, message_id: str) -> None:
        """Forget the count: the message's handling reached an outcome."""
        self.filter(queue=queue, message_id=message_id).delete()


class CrashCount(models.Model):
    """How often a message's handling ended without an outcome (its worker died meanwhile).

    Written only for redelivered messages; see ``workers.crashes``.
    """

    queue = models.CharField(max_length=200)
    message_id = models.CharField(max_length=200)
    crashes = models.PositiveIntegerField(default=0)
    released = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CrashCounts.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "message_id"], name="kew_crash_count_once"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.message_id}: {self.crashes} crash(es)"


class ProcessedMessage(models.Model):
    """A message an idempotent consumer has handled, recorded in the handler's transaction."""

    consumer = models.CharField(max_length=200)
    message_id = models.CharField(max_length=64)
    processed_at = models.DateTimeField(default=timezone.now)

    objects = ProcessedMessages.as_manager()

    class Meta:
        verbose_name = "processed message"
        constraints = [
            models.UniqueConstraint(fields=["consumer", "message_id"], name="kew_processed_once"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} {self.message_id}"


class QueuedMessage(models.Model):
    """A message waiting in a queue of the database provider.

    Consumers lease rows (``leased_until``, ``lease_token``); an ack deletes
    the row; a lease that runs out makes the row deliverable again with
    ``redelivered`` set.
    """

    queue = models.CharField(max_length=200)
    payload = models.BinaryField()
    message_id = models.CharField(max_length=100, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    available_at = models.DateTimeField(default=timezone.now)
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    redelivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "queued message"
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "message_id"],
                condition=Q(message_id__isnull=False),
                name="kew_queued_dedup",
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "available_at", "id"], name="kew_queued_next_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.message_id or self.pk}"


class TaskResultRecord(models.Model):
    """The stored result of one task enqueued through ``kew_django.tasks``.

    Written in the caller's transaction with the task's outbox row, updated
    by the worker in each attempt's transaction; any process reads it.
    """

    class Status(models.TextChoices):
        READY = "READY", "Ready"
        RUNNING = "RUNNING", "Running"
        FAILED = "FAILED", "Failed"
        SUCCESSFUL = "SUCCESSFUL", "Successful"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task_path = models.CharField(max_length=300)
    backend = models.CharField(max_length=100)
    queue_name = models.CharField(max_length=200)
    priority = models.IntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    run_after = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    worker_ids = models.JSONField(default=list, blank=True)
    # The dead letter of the last failure; a requeue of it starts a new round of
    # attempts, numbered from `round_base` + 1.
    dead_letter_id = models.BigIntegerField(null=True, blank=True)
    round_base = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "task result"
        indexes = [
            models.Index(fields=["status", "enqueued_at"], name="kew_task_status_idx"),
            models.Index(fields=["task_path", "status"], name="kew_task_path_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} {self.id} ({self.status})"


class InProgressRows(models.QuerySet["InProgress"]):
    """Rows of running deliveries; those whose worker stopped beating are stale."""

    def stale(self, after: timedelta) -> InProgressRows:
        """Return the rows with no heartbeat for ``after``, by the database's clock."""
        return self.filter(heartbeat_at__lt=Now() - after)

    def running(self, after: timedelta) -> InProgressRows:
        """Return the rows whose worker beat within ``after`` (or has not beaten yet)."""
        return self.exclude(heartbeat_at__lt=Now() - after)


class InProgress(models.Model):
    """A message a worker is handling now: who holds it, since when, how far it got.

    Written by the worker's heartbeat (one short write per beat) and read by
    the admin's "in progress" view and by applications' status pages. The
    row is deleted when the delivery is done; a row whose heartbeat is old
    belongs to a worker that died (its message comes back when the lease
    ends) and is deleted by the next sweep (``workers.sweep``).
    ``cancel_requested_at`` is how an operator asks the handler to
    stop: it learns it at its next progress report.
    """

    queue = models.CharField(max_length=200)
    message_id = models.CharField(max_length=64, help_text="The origin id of the message.")
    attempt = models.PositiveIntegerField(default=1, help_text="The delivery count.")
    worker = models.CharField(max_length=200, blank=True, help_text="host, process and thread")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    done = models.PositiveBigIntegerField(null=True, blank=True)
    total = models.PositiveBigIntegerField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=150, blank=True)

    objects = InProgressRows.as_manager()

    class Meta:
        verbose_name = "message in progress"
        verbose_name_plural = "messages in progress"
        constraints = [
            models.UniqueConstraint(fields=["queue", "message_id"], name="kew_in_progress_once"),
        ]
        permissions = [("cancel_inprogress", "Can ask messages in progress to stop")]

    def __str__(self) -> str:
        return f"{self.queue} {self.message_id} (attempt {self.attempt})"

    @property
    def percent(self) -> float | None:
        """Return how far the handler got, 0-100, if it reported a total."""
        if self.done is None or not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)


class KewProcess(models.Model):
    """A running relay or consumer process, as it last said it was alive (``kew_status``).

    Each long-running Kew command writes its row every
    ``KEW["OBSERVABILITY"]["RECORD_INTERVAL"]`` seconds; rows not seen
    for a day are deleted by the next write of any process.
    """

    name = models.CharField(max_length=200, unique=True)  # host:pid:start
    kind = models.CharField(max_length=16)  # relay, consume, run
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    in_progress = models.JSONField(default=dict, blank=True)  # queue -> deliveries in hand
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "Kew process"
        verbose_name_plural = "Kew processes"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class PeriodicJob(models.Model):
    """The shared state of one ``@periodic`` job: the ticks handled, the last one fired, paused.

    Every ``kew_run``/``kew_consume`` process reads it; a tick is fired by
    the one process whose conditional UPDATE moves ``done_until`` past it,
    in the transaction that writes the tick's message (``periodic.firing``).
    """

    name = models.CharField(max_length=200, unique=True)
    # Ticks at or before this instant are handled: fired, or skipped by the catch-up policy.
    done_until = models.DateTimeField()
    last_tick = models.DateTimeField(null=True, blank=True, help_text="The last tick fired.")
    last_fired_at = models.DateTimeField(null=True, blank=True, help_text="Database time.")
    fired = models.PositiveBigIntegerField(default=0, help_text="Ticks fired so far.")
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name = "periodic job"
        permissions = [("pause_periodicjob", "Can pause and resume periodic jobs")]

    def __str__(self) -> str:
        return f"{self.name}{' (paused)' if self.paused else ''}"


class TopicSubscription(models.Model):
    """A durable subscription of the database provider: a publish to ``topic`` queues a copy.

    Written by ``DatabaseProvider.subscribe`` (the relay and the workers
    declare the subscriptions of the code's ``@subscriber``\\ s).
    """

    topic = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    queue = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "topic subscription"
        indexes = [models.Index(fields=["topic"], name="kew_subscription_topic_idx")]

    def __str__(self) -> str:
        return self.queue


# Limits: cluster-wide concurrency and rate limits (``kew_django.limits``, docs/backpressure.md).


class LimitSetting(models.Model):
    """A limit by name: values an operator set (over the code's and settings'), and its lock.

    Every slot is taken with this row locked, so its blank fields mean "as
    declared" and a value typed in the admin holds from the next start on.
    """

    name = models.CharField(max_length=200, unique=True)
    concurrency = models.PositiveIntegerField(null=True, blank=True)
    per_key = models.PositiveIntegerField(null=True, blank=True)
    rate = models.FloatField(null=True, blank=True, help_text="starts per second")
    key_rate = models.FloatField(null=True, blank=True, help_text="starts per second per key")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "limit"

    def __str__(self) -> str:
        return self.name


class LimitSlot(models.Model):
    """One slot of a concurrency limit, held by one running message until its lease ends."""

    limit = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    token = models.UUIDField(unique=True)
    holder = models.CharField(max_length=200, blank=True)  # host, process and thread
    taken_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()  # the database's clock; renewed by the heartbeat

    class Meta:
        indexes = [models.Index(fields=["limit", "key"], name="kew_limit_slot_idx")]

    def __str__(self) -> str:
        return f"{self.limit} {self.key} ({self.holder})"


class LimitClock(models.Model):
    """The rate clock of one limit and key ("" for the whole limit) and when it was last served."""

    limit = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    tat = models.FloatField(default=0.0)  # theoretical arrival time, database epoch seconds
    served_at = models.FloatField(default=0.0)  # the same clock; round-robin order of keys

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["limit", "key"], name="kew_limit_clock_once"),
        ]

    def __str__(self) -> str:
        return f"{self.limit} {self.key}"


class ParkedMessage(models.Model):
    """A message that could not start (its key or its limit was full), waiting for a slot."""

    queue = models.CharField(max_length=200)
    limit = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    payload = models.BinaryField()
    message_id = models.CharField(max_length=200, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    redelivered = models.BooleanField(default=False)
    parked_at = models.DateTimeField(default=timezone.now)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "parked message"
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "message_id"],
                condition=Q(message_id__isnull=False),
                name="kew_parked_once",
            ),
        ]
        indexes = [models.Index(fields=["queue", "key", "id"], name="kew_parked_next_idx")]

    def __str__(self) -> str:
        return f"{self.queue} {self.key} {self.message_id or self.pk}"
