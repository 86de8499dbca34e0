"""The Kew task backend end to end: enqueue in a transaction, run, retry, dead letter, requeue."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from kew_django import operations
from kew_django.models import DeadLetter, OutboxMessage, TaskResultRecord
from kew_django.relay.publisher import Relay
from kew_django.tasks.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from tests.kew_django.conftest import written
from tests.kew_django.tasks import tasks


class Rollback(Exception):
    pass


def test_rollback_means_no_task_and_commit_means_exactly_one_run(run_tasks, task_queue):
    add = tasks.add.using(queue_name=task_queue)
    with pytest.raises(Rollback), transaction.atomic():
        add.enqueue(1, 1)
        raise Rollback
    assert not TaskResultRecord.objects.exists() and not OutboxMessage.objects.exists()
    assert not written(task_queue)

    with transaction.atomic():
        result = add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    run_tasks(lambda: TaskResultRecord.objects.get(pk=result.id).status == "SUCCESSFUL")
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert result.attempts == 1 and result.errors == []
    assert result.started_at and result.finished_at and result.enqueued_at
    assert list(Group.objects.values_list("name", flat=True)) == ["add 2 3"]  # one run


def test_retries_then_a_dead_letter_requeued_and_then_successful(run_tasks, task_queue, tmp_path):
    flag = tmp_path / "broken"
    flag.touch()
    result = tasks.fails_while.using(queue_name=task_queue).enqueue(str(flag))
    run_tasks(lambda: DeadLetter.objects.filter(queue=task_queue).exists())
    result.refresh()
    assert result.status == TaskResultStatus.FAILED  # retry="50ms": two attempts
    assert result.attempts == 2 and len(result.errors) == 2
    assert result.errors[-1].exception_class is RuntimeError
    assert "is still there" in result.errors[-1].traceback
    assert not Group.objects.exists()  # each failed attempt's writes were rolled back
    letter = DeadLetter.objects.get(queue=task_queue)
    assert "RuntimeError" in letter.traceback

    flag.unlink()
    operations.requeue_dead_letters([letter])
    run_tasks(lambda: TaskResultRecord.objects.get(pk=result.id).status == "SUCCESSFUL")
    result.refresh()
    assert result.return_value == "done" and result.attempts == 3
    assert Group.objects.count() == 1


def test_an_async_task_and_one_that_takes_context(run_tasks, task_queue):
    doubled = tasks.double.using(queue_name=task_queue).enqueue(21)
    context = tasks.attempt_number.using(queue_name=task_queue).enqueue(7)
    run_tasks(lambda: TaskResultRecord.objects.filter(status="SUCCESSFUL").count() == 2)
    assert tasks.double.get_result(doubled.id).return_value == 42
    assert tasks.attempt_number.get_result(context.id).return_value == [1, context.id, 7]


def test_a_return_value_that_is_not_json_fails_the_task(run_tasks, task_queue):
    result = tasks.returns_a_set.using(queue_name=task_queue).enqueue()
    run_tasks(lambda: TaskResultRecord.objects.get(pk=result.id).status == "FAILED")
    result.refresh()
    assert result.errors[-1].exception_class is TypeError


def test_the_signals_fire(run_tasks, task_queue):
    seen: list[tuple[str, str]] = []

    def note(name):
        return lambda sender, task_result, **kwargs: seen.append((name, task_result.status))

    receivers = [note("enqueued"), note("started"), note("finished")]
    for signal, receiver in zip(
        [task_enqueued, task_started, task_finished], receivers, strict=True
    ):
        signal.connect(receiver, weak=False)
    try:
        result = tasks.add.using(queue_name=task_queue).enqueue(1, 2)
        run_tasks(lambda: TaskResultRecord.objects.get(pk=result.id).status == "SUCCESSFUL")
    finally:
        for signal, receiver in zip(
            [task_enqueued, task_started, task_finished], receivers, strict=True
        ):
            signal.disconnect(receiver)
    assert seen == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]


@pytest.mark.django_db
def test_a_non_json_argument_fails_at_enqueue():
    with pytest.raises(TypeError, match="argument 0 of task .*add is not JSON-serialisable"):
        tasks.add.enqueue(object(), 1)
    assert not TaskResultRecord.objects.exists()


@pytest.mark.django_db
def test_run_after_is_a_scheduled_delivery():
    from datetime import timedelta

    from django.utils import timezone

    when = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=when).enqueue(1, 1)
    (message,) = written("default")
    assert message.due == when
    assert result.task.run_after == when


def test_unknown_queue_and_priority_are_refused_by_validate_task(settings):
    with pytest.raises(InvalidTask, match="not valid for backend"):
        tasks.add.using(queue_name="no-such-queue")
    with pytest.raises(InvalidTask, match="priority 5 cannot be honoured"):
        tasks.add.using(priority=5)


@pytest.mark.django_db
def test_get_result_of_an_unknown_id():
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result("not-a-uuid")


def test_check_reports_misconfiguration(settings):
    settings.TASKS = {
        "default": {
            "BACKEND": "kew_django.tasks.KewTaskBackend",
            "QUEUES": [],
            "OPTIONS": {"PROVIDER": "nowhere", "RETRY": "soon", "RETRIES": 3},
        }
    }
    ids = [message.id for message in task_backends["default"].check()]
    assert ids == ["kew.E010", "kew.E011", "kew.E012", "kew.E013"]


def test_the_reference_app_resends_an_outcome_email_as_a_task(provider):
    from django.core import mail

    from kew_django.tasks.worker import task_queue_spec
    from kew_django.workers.worker import Worker
    from project.imports.models import Import
    from project.imports.tasks import MAINTENANCE_QUEUE, resend_outcome_email
    from tests.contract.helpers import assert_empty

    item = Import.objects.create(requested_path="a", path="a", email="x@example.org")
    result = resend_outcome_email.enqueue(str(item.pk))
    Relay(provider).relay_all()
    worker = Worker(task_queue_spec(MAINTENANCE_QUEUE), provider)
    with provider.receiver(MAINTENANCE_QUEUE) as receiver:
        worker.handle(receiver.receive(10))
    result.refresh()
    assert result.return_value == "x@example.org" and len(mail.outbox) == 1
    assert_empty(provider, MAINTENANCE_QUEUE)
