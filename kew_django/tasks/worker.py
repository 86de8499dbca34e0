"""Run enqueued tasks: the consumer of every task queue (``register_task_queues``).

One delivery is one attempt, in the worker's transaction; the engine's
retry rule applies, on the task's own schedule; when it gives up,
``task_gave_up`` stores FAILED. See ``docs/tasks.md`` (What happens).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import router, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from kew.message import Message
from kew.schedule import GiveUp, RepeatAction, Schedule, after_failure
from kew_django.errors import PermanentError
from kew_django.identity import worker_id
from kew_django.models import DeadLetter, TaskResultRecord
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


def run_task(message: Message[dict[str, Any]]) -> RepeatAction | None:
    """Run one attempt of the task ``message.data["id"]``, in the worker's transaction.

    A failure with retries left stores its error and answers RETRY; the
    last failure raises, rolling the attempt back, for the dead letter.
    """
    data = message.data
    using = router.db_for_write(TaskResultRecord)
    record = TaskResultRecord.objects.using(using).select_for_update().filter(pk=data["id"]).first()
    if record is None:
        log.warning("task result %s is gone; delivery dropped", data["id"])
        return None
    if record.status == Status.FAILED and _requeued(record, using):
        record.round_base, record.dead_letter_id = len(record.worker_ids), None
    elif record.status in (Status.SUCCESSFUL, Status.FAILED):
        log.info("task %s has finished; delivery dropped", record.id)
        return None
    attempt = _attempt(record, message)
    if len(record.worker_ids) >= attempt:
        return _ran_before(record, attempt)
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
        decision = after_failure(task_schedule(data), message, error)
        if isinstance(decision, GiveUp):
            raise  # rolls the attempt back: the dead letter keeps the traceback (task_gave_up)
        record.errors = [*record.errors, task_error(error)]
        record.status = Status.READY
        record.save(using=using)
        log.warning(
            "task %s (%s) failed on attempt %d, retry in %ss: %r",
            record.id,
            task.module_path,
            attempt,
            decision.delay.total_seconds(),
            error,
        )
        return RepeatAction.RETRY
    record.status = Status.SUCCESSFUL
    record.return_value = value
    record.finished_at = timezone.now()
    record.save(using=using)
    task_finished.send(type(backend), task_result=to_result(record, task))
    return None


def _attempt(record: TaskResultRecord, message: Message[dict[str, Any]]) -> int:
    """Return the attempt ``message`` is: counted from the round's start by its deliveries."""
    # Payloads queued by earlier versions carry their attempt number ("attempt"),
    # their deliveries counting from one again.
    carried = int(message.data.get("attempt", 1)) - 1
    return max(record.round_base, carried) + message.delivery_count


def _ran_before(record: TaskResultRecord, attempt: int) -> RepeatAction | None:
    """Answer a delivery whose attempt is recorded: RETRY if its retry may not have been sent."""
    if len(record.worker_ids) == attempt and record.status == Status.READY:
        # It failed and committed; the worker may have stopped before sending the retry.
        log.info("task %s: attempt %d failed before; its retry is sent", record.id, attempt)
        return RepeatAction.RETRY
    log.info("task %s: attempt %d ran before; delivery dropped", record.id, attempt)
    return None


def task_schedule(data: Any) -> Schedule:
    """Return the retry schedule of the task a payload names; none if it cannot be found."""
    try:
        task = import_string(data["task"])
        backend = task_backends[data.get("backend") or task.backend]
        if isinstance(backend, KewTaskBackend):
            return backend.schedule(task)
    except Exception:  # noqa: BLE001 - a task that cannot be loaded is given up on (run_task)
        pass
    return Schedule()


class TaskQueueSpec(ConsumerSpec):
    """The consumer of a task queue: ``run_task`` gets the message, each task its schedule."""

    def call(self, message: Message[Any]) -> RepeatAction | None:
        """Run the task attempt ``message`` is."""
        return self.handler(message)

    def schedule_for(self, message: Message[Any]) -> Schedule:
        """Return the retry schedule of the message's task."""
        return task_schedule(message.data)


def task_queue_spec(queue: str) -> TaskQueueSpec:
    """Return the consumer of the task queue ``queue``."""
    return TaskQueueSpec(queue, run_task, payload=None, on_exhausted=task_gave_up)


@takes_dead_letter
def task_gave_up(
    data: dict[str, Any], error: BaseException | None, letter: DeadLetter | None = None
) -> None:
    """Store FAILED, and the dead letter, for a task whose last attempt failed."""
    using = router.db_for_write(TaskResultRecord)
    record = TaskResultRecord.objects.using(using).filter(pk=str(data.get("id"))).first()
    if record is None or record.status == Status.SUCCESSFUL:
        return
    # run_task's own PermanentError (the task cannot be loaded) stands for its cause.
    cause = error.__cause__ if isinstance(error, PermanentError) and error.__cause__ else error
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
    return [registry.register(task_queue_spec(queue)) for queue in task_queues()]
