"""Task results: the ``TaskResultRecord`` row seen as Django's ``TaskResult``."""

from __future__ import annotations

import json
import traceback
from typing import Any

from django.utils.module_loading import import_string

from kew_django.models import TaskResultRecord
from kew_django.tasks.compat import Task, TaskError, TaskResult, TaskResultStatus


def load_task(record: TaskResultRecord) -> Task:
    """Return the task of ``record``, with the options it was enqueued with."""
    task = import_string(record.task_path)
    if not isinstance(task, Task):
        raise TypeError(f"{record.task_path!r} is not a task (decorate it with @task)")
    return task.using(
        queue_name=record.queue_name,
        priority=record.priority,
        backend=record.backend,
        run_after=record.run_after,
    )


def to_result(record: TaskResultRecord, task: Task | None = None) -> TaskResult:
    """Return Django's ``TaskResult`` for ``record``."""
    result: TaskResult = TaskResult(
        task=task or load_task(record),
        id=str(record.id),
        status=TaskResultStatus(record.status),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.last_attempted_at,
        args=list(record.args),
        kwargs=dict(record.kwargs),
        backend=record.backend,
        errors=[TaskError(**error) for error in record.errors],
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)
    return result


def task_error(error: BaseException) -> dict[str, str]:
    """Return ``error`` as a stored ``TaskError``: class path and traceback."""
    kind = type(error)
    return {
        "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
        "traceback": "".join(traceback.format_exception(error)),
    }


def to_json(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON data; TypeError names ``what`` if it is not JSON."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{what} is not JSON-serialisable ({type(value).__name__}: {error}); tasks take "
            "and return JSON data: str, int, float, bool, None, lists and dicts of them"
        ) from None
