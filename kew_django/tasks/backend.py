"""``KewTaskBackend``: Django tasks delivered through Kew's transactional outbox.

``enqueue`` writes the result row and an outbox row in the caller's
transaction: the task exists if and only if that transaction commits.
``kew_consume`` runs it (``docs/tasks.md``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.utils import timezone

from kew.schedule import Schedule
from kew_django.conf import section
from kew_django.models import TaskResultRecord
from kew_django.outbox import Channel
from kew_django.tasks.compat import (
    DEFAULT_TASK_PRIORITY,
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    task_enqueued,
)
from kew_django.tasks.results import to_json, to_result
from kew_django.tasks.task import KewTask

DEFAULT_RETRY = "10s 1m 10m"
KNOWN_OPTIONS = {"PROVIDER", "RETRY"}


class KewTaskBackend(BaseTaskBackend):
    """Run Django tasks through Kew: transactional enqueue, retries, dead letters.

    ``OPTIONS``: ``PROVIDER``, the ``KEW["PROVIDERS"]`` alias the relay
    publishes to (default ``"default"``); ``RETRY``, the retry schedule of
    tasks that set none (default ``"10s 1m 10m"``; ``""`` for none).
    """

    task_class = KewTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    # NOTE: no provider orders deliveries by priority yet (Artemis could, with
    # its `priority` header, once the core has a PRIORITY capability).
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.provider = str(self.options.get("PROVIDER", "default"))
        self.retry = self.options.get("RETRY", DEFAULT_RETRY)

    def schedule(self, task: Task) -> Schedule:
        """Return the retry schedule of ``task``: its own, or the backend's."""
        retry = getattr(task, "retry", None)
        return Schedule.parse(self.retry if retry is None else retry)

    def validate_task(self, task: Task) -> None:
        """Refuse what this backend cannot run, naming the reason."""
        if task.priority != DEFAULT_TASK_PRIORITY and not self.supports_priority:
            raise InvalidTask(
                f"task {task.module_path}: priority {task.priority} cannot be honoured: "
                f"the Kew provider {self.provider!r} delivers in order, without priorities"
            )
        super().validate_task(task)
        try:
            self.schedule(task)
        except Exception as error:
            raise InvalidTask(f"task {task.module_path}: bad retry schedule: {error}") from None

    def enqueue(self, task: Task, args: Iterable[Any], kwargs: dict[str, Any]) -> TaskResult:
        """Queue up a task to be executed, in the caller's transaction."""
        self.validate_task(task)
        args = [
            to_json(arg, f"argument {n} of task {task.module_path}") for n, arg in enumerate(args)
        ]
        kwargs = {
            name: to_json(value, f"argument {name!r} of task {task.module_path}")
            for name, value in kwargs.items()
        }
        using = router.db_for_write(TaskResultRecord)
        # Both rows or neither; inside the caller's transaction no savepoint is needed.
        with transaction.atomic(using=using, savepoint=False):
            record = TaskResultRecord.objects.using(using).create(
                task_path=task.module_path,
                backend=self.alias,
                queue_name=task.queue_name,
                priority=task.priority,
                args=args,
                kwargs=kwargs,
                run_after=task.run_after,
                enqueued_at=timezone.now(),
            )
            payload = {"task": task.module_path, "id": str(record.id), "backend": self.alias}
            channel: Channel[dict] = Channel(task.queue_name, provider=self.provider)
            if task.run_after is None:
                channel.send(payload, using=using)
            else:
                channel.send_at(payload, task.run_after, using=using)
        result = to_result(record, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """Return the stored result ``result_id``, from any process."""
        try:
            record = TaskResultRecord.objects.get(pk=result_id)
        except (TaskResultRecord.DoesNotExist, ValidationError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        return to_result(record)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report bad OPTIONS, an unknown provider alias and a bad retry schedule."""
        return list(self._check())

    def _check(self) -> Iterable[checks.CheckMessage]:
        where = f"TASKS[{self.alias!r}]"
        unknown = sorted(set(self.options) - KNOWN_OPTIONS)
        if unknown:
            yield checks.Error(
                f"{where}['OPTIONS'] has unknown key(s) {', '.join(map(repr, unknown))}",
                hint=f"known: {', '.join(sorted(KNOWN_OPTIONS))}",
                id="kew.E010",
            )
        providers = section("PROVIDERS")
        if self.provider not in providers:
            yield checks.Error(
                f"{where}['OPTIONS']['PROVIDER'] {self.provider!r} is not in KEW['PROVIDERS']",
                hint=f"known: {', '.join(sorted(providers))}",
                id="kew.E011",
            )
        try:
            Schedule.parse(self.retry)
        except Exception as error:
            yield checks.Error(f"{where}['OPTIONS']['RETRY']: {error}", id="kew.E012")
        if not self.queues:
            yield checks.Error(
                f"{where}['QUEUES'] is empty: no task could be enqueued", id="kew.E013"
            )
