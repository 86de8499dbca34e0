"""Task retries on the engine's rule: each task's schedule, deliveries again, older payloads."""

from __future__ import annotations

from kew.errors import PermanentError
from kew.qchan.outcomes import DeliveryOutcome
from kew_django.models import DeadLetter, OutboxMessage, QueuedMessage, TaskResultRecord
from kew_django.outbox import Channel
from kew_django.relay.publisher import Relay
from kew_django.tasks.compat import TaskResultStatus
from kew_django.tasks.worker import task_queue_spec
from kew_django.workers.worker import Worker
from tests.kew_django.tasks import tasks


def handle_one(provider, queue: str) -> DeliveryOutcome:
    """Relay what is due and handle the next delivery of ``queue``."""
    Relay(provider).relay_all()
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None, "no delivery came"
        return Worker(task_queue_spec(queue), provider).handle(delivery)


def test_each_task_on_a_queue_is_retried_on_its_own_schedule(run_tasks, task_queue):
    once = tasks.fails_at_once.using(queue_name=task_queue).enqueue()  # retry=""
    twice = tasks.returns_a_set.using(queue_name=task_queue).enqueue()  # the backend's "50ms"
    run_tasks(lambda: TaskResultRecord.objects.filter(status="FAILED").count() == 2)
    once.refresh()
    twice.refresh()
    assert once.attempts == 1 and twice.attempts == 2
    letters = DeadLetter.objects.filter(queue=task_queue)
    assert sorted(letter.attempts for letter in letters) == [1, 2]


def test_a_task_raising_permanent_error_is_given_up_at_once(provider, task_queue):
    result = tasks.refuses.using(queue_name=task_queue).enqueue()  # retry="1h"
    assert handle_one(provider, task_queue) is DeliveryOutcome.DEAD
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert result.errors[-1].exception_class is PermanentError
    assert DeadLetter.objects.get(queue=task_queue).reason == DeadLetter.Reason.FAILED


def test_a_failed_attempt_delivered_again_sends_its_retry_without_running(provider, task_queue):
    result = tasks.add.using(queue_name=task_queue).enqueue(1, 2)
    # As if attempt 1 failed and committed, and its worker stopped before sending the retry.
    TaskResultRecord.objects.filter(pk=result.id).update(worker_ids=["stopped"])
    assert handle_one(provider, task_queue) is DeliveryOutcome.RETRIED
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.attempts == 1
    assert handle_one(provider, task_queue) is DeliveryOutcome.HANDLED  # the retry: attempt 2
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 2
    assert result.return_value == 3


def test_a_payload_queued_with_its_attempt_number_by_an_earlier_version_runs(provider, task_queue):
    result = tasks.add.using(queue_name=task_queue).enqueue(1, 2)
    OutboxMessage.objects.all().delete()
    QueuedMessage.objects.filter(queue=task_queue).delete()  # a direct send's row
    TaskResultRecord.objects.filter(pk=result.id).update(worker_ids=["earlier"])
    payload = {"task": tasks.add.module_path, "id": result.id, "attempt": 2}
    Channel(task_queue).send(payload)
    assert handle_one(provider, task_queue) is DeliveryOutcome.HANDLED
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 2
