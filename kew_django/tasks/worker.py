"""Run enqueued tasks: the consumer of every task queue.

Each task queue gets a ``ConsumerSpec`` whose handler is ``run_task``,
so ``kew_consume`` and ``kew_run`` run task queues beside ``@consumer``
ones. One delivery is one attempt, in the worker's transaction:

- the attempt is recorded (RUNNING, a worker id) and the task runs in a
  savepoint; success stores SUCCESSFUL and the return value;
- a failure rolls the task's writes back and stores the error; if the
  task's schedule allows another attempt, the next one is written to the
  outbox (``attempt`` + 1, delivered after the interval) in the same
  transaction and the result is READY again; if not, ``PermanentError``
  makes the worker write a dead letter (requeued from the admin like
  any other) and ``task_gave_up`` stores FAILED.
- a worker that dies mid-attempt commits nothing: the delivery comes back
  and the attempt runs again. A delivery whose attempt is already
  recorded (redelivered after its commit) is skipped, so each attempt has
  its effects once.

NOTE: RUNNING is written in the attempt's transaction, so other processes
see READY until the attempt ends.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.utils import timezone

from kew_django.errors import PermanentError
from kew_django.identity import worker_id
from kew_django.models import DeadLetter, TaskResultRecord
from kew_django.outbox import Channel
from kew_django.tasks.backend import KewTaskBackend
from kew_django.tasks.compat import (
    Task,
    TaskContext,
    task_backends,
    task_finished,
    task_started,
)
from kew_django.tasks.results import load_task, task_error, to_json, to_result
from kew_django.workers.deadletters import takes_dead_letter
from kew_django.workers.registry import ConsumerRegistry, ConsumerSpec

log = logging.getLogger(__name__)

Status = TaskResultRecord.Status
# Retries of the glue itself (a database error around the task), not of tasks.
GLUE_RETRY = "5s 30s 2m"


def run_task(data: dict[str, Any]) -> None:
    """Run one attempt of the task ``data["id"]``, in the worker's transaction."""
    using = router.db_for_write(TaskResultRecord)
    attempt = int(data.get("attempt", 1))
    record = TaskResultRecord.objects.using(using).select_for_update().filter(pk=data["id"]).first()
    if record is None:
        log.warning("task result %s is gone; delivery dropped", data["id"])
        return
    if record.status == Status.FAILED and _requeued(record, using):
        record.round_base, record.dead_letter_id = len(record.worker_ids), None
        attempt = len(record.worker_ids) + 1
    elif record.status in (Status.SUCCESSFUL, Status.FAILED) or len(record.worker_ids) >= attempt:
        log.info("task %s: attempt %d ran before; delivery dropped", record.id, attempt)
        return
    try:
        task = load_task(record)
    except Exception as error:
        raise PermanentError(f"cannot load task {record.task_path!r}: {error}") from error
    backend = task_backends[record.backend]
    now = timezone.now()
    record.status = Status.RUNNING
    record.started_at = record.started_at or now
    record.last_attempted_at = now
    record.worker_ids = [*record.worker_ids, worker_id()]
    result = to_result(record, task)
    task_started.send(type(backend), task_result=result)
    try:
        with transaction.atomic(using=using):
            value = to_json(_call(task, result), f"the return value of task {task.module_path}")
    except Exception as error:
        record.errors = [*record.errors, task_error(error)]
        schedule = backend.schedule(task)  # type: ignore[attr-defined]
        delay = schedule.delay_after(attempt - record.round_base)
        if delay is None:
            raise PermanentError(
                f"task {task.module_path} failed on attempt {attempt}, the last: {error!r}"
            ) from error
        record.status = Status.READY
        record.save(using=using)
        retry = {**data, "attempt": attempt + 1}
        channel: Channel[dict[str, Any]] = Channel(
            record.queue_name,
            provider=backend.provider,  # type: ignore[attr-defined]
        )
        channel.send_after(retry, delay, using=using)
        log.warning(
            "task %s (%s) failed on attempt %d, retry in %ss: %r",
            record.id,
            task.module_path,
            attempt,
            delay.total_seconds(),
            error,
        )
        return
    record.status = Status.SUCCESSFUL
    record.return_value = value
    record.finished_at = timezone.now()
    record.save(using=using)
    task_finished.send(type(backend), task_result=to_result(record, task))


@takes_dead_letter
def task_gave_up(
    data: dict[str, Any], error: BaseException | None, letter: DeadLetter | None = None
) -> None:
    """Store FAILED, and the dead letter, for a task whose last attempt failed."""
    using = router.db_for_write(TaskResultRecord)
    record = TaskResultRecord.objects.using(using).filter(pk=str(data.get("id"))).first()
    if record is None or record.status == Status.SUCCESSFUL:
        return
    cause = error.__cause__ if error is not None and error.__cause__ is not None else error
    now = timezone.now()
    record.status = Status.FAILED
    record.started_at = record.started_at or now
    record.last_attempted_at = record.finished_at = now
    record.worker_ids = [*record.worker_ids, worker_id()]
    if cause is not None:
        record.errors = [*record.errors, task_error(cause)]
    record.dead_letter_id = letter.pk if letter is not None else None
    record.save(using=using)
    try:
        task: Task | None = load_task(record)
    except Exception:
        return
    task_finished.send(type(task_backends[record.backend]), task_result=to_result(record, task))


def _requeued(record: TaskResultRecord, using: str) -> bool:
    """Return whether a FAILED task's dead letter was requeued (or it has none)."""
    if record.dead_letter_id is None:
        return True
    letters = DeadLetter.objects.using(using).filter(pk=record.dead_letter_id)
    return not letters.filter(state=DeadLetter.State.DEAD).exists()


def _call(task: Task, result: Any) -> Any:
    """Call the task function (a coroutine function runs to completion here)."""
    if task.takes_context:
        return task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
    return task.call(*result.args, **result.kwargs)


def task_queues() -> dict[str, str]:
    """Return the queues of every Kew task backend in ``TASKS``, with their backend alias."""
    queues: dict[str, str] = {}
    for alias in getattr(settings, "TASKS", {}) or {}:
        try:
            backend = task_backends[alias]
        except Exception:  # noqa: BLE001 - the backend's own check reports it
            continue
        if isinstance(backend, KewTaskBackend):
            for queue in sorted(backend.queues):
                queues.setdefault(queue, alias)
    return queues


def register_task_queues(registry: ConsumerRegistry) -> list[ConsumerSpec]:
    """Register ``run_task`` as the consumer of every task queue; return the specs."""
    return [
        registry.register(
            ConsumerSpec(queue, run_task, payload=None, retry=GLUE_RETRY, on_exhausted=task_gave_up)
        )
        for queue in task_queues()
    ]
