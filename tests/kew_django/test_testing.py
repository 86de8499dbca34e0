"""The test helpers users get: drain a queue with its registered consumer, read dead letters."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from kew_django import Channel, PermanentError, RepeatAction
from kew_django.errors import KewImproperlyConfigured
from kew_django.models import DeadLetter
from kew_django.testing import DeliveryOutcome, dead_letters, drain
from tests.kew_django.conftest import Job


@pytest.fixture
def jobs(queue) -> Channel[Job]:
    return Channel(queue, payload=Job)


def test_drain_relays_the_outbox_and_runs_the_registered_consumer(
    database_provider, consumers, jobs
):
    @consumers.consumer(jobs)
    def make_group(job: Job) -> None:
        Group.objects.create(name=f"group-{job.n}")

    with transaction.atomic():
        jobs.send_many([Job(1), Job(2)])
    outcomes = drain(jobs, provider=database_provider)
    assert outcomes == [DeliveryOutcome.HANDLED] * 2
    assert sorted(Group.objects.values_list("name", flat=True)) == ["group-1", "group-2"]
    assert drain(jobs, provider=database_provider) == []


@pytest.mark.usefixtures("outbox_sends")  # relay=False is about outbox rows
def test_drain_without_relay_leaves_the_outbox_alone(database_provider, consumers, jobs):
    consumers.consumer(jobs)(lambda job: None)
    jobs.send(Job(1))
    assert drain(jobs, provider=database_provider, relay=False) == []
    assert drain(jobs.queue, provider=database_provider) == [DeliveryOutcome.HANDLED]


def test_drain_runs_due_retries_and_leaves_later_ones_queued(database_provider, consumers, jobs):
    answers = [RepeatAction.RETRY, None]

    @consumers.consumer(jobs, retry="0s 1h")
    def flaky(job: Job):
        return answers.pop(0)

    jobs.send(Job(1))
    assert drain(jobs, provider=database_provider) == [
        DeliveryOutcome.RETRIED,
        DeliveryOutcome.HANDLED,
    ]

    @consumers.consumer(f"{jobs.queue}.later", payload=Job, retry="1h")
    def always_retries(job: Job):
        return RepeatAction.RETRY

    Channel(f"{jobs.queue}.later", payload=Job).send(Job(2))
    assert drain(f"{jobs.queue}.later", provider=database_provider) == [DeliveryOutcome.RETRIED]
    assert database_provider.pending(f"{jobs.queue}.later") == 1


def test_drain_with_retry_now_runs_the_whole_schedule_then_dead_letters(
    database_provider, consumers, jobs
):
    exhausted = []

    @consumers.consumer(
        jobs, retry="1h 1d", on_exhausted=lambda data, error: exhausted.append((data, error))
    )
    def always_fails(job: Job):
        raise ValueError(f"no luck with {job.n}")

    (row,) = jobs.send_many([Job(7)])
    outcomes = drain(jobs, provider=database_provider, retry_now=True)
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.RETRIED, DeliveryOutcome.DEAD]
    assert [data for data, _ in exhausted] == [Job(7)]
    (letter,) = dead_letters(jobs)
    assert letter.reason == DeadLetter.Reason.EXHAUSTED and letter.attempts == 3
    assert letter.message_id == row.message_id
    assert "ValueError: no luck with 7" in letter.error
    assert database_provider.pending(jobs.queue) == 0


def test_dead_letters_lists_one_queue_oldest_first(database_provider, consumers, jobs):
    @consumers.consumer(jobs)
    def refuse(job: Job):
        raise PermanentError(f"job {job.n} is not for us")

    jobs.send_many([Job(1), Job(2)])
    assert drain(jobs, provider=database_provider) == [DeliveryOutcome.DEAD] * 2
    letters = dead_letters(jobs)
    assert [letter.reason for letter in letters] == [DeadLetter.Reason.FAILED] * 2
    assert ["job 1" in letters[0].error, "job 2" in letters[1].error] == [True, True]
    assert not dead_letters("some.other.queue").exists()


def test_drain_uses_the_default_provider_from_settings(
    consumers, jobs, providers, transactional_db
):
    calls = []

    @consumers.consumer(jobs)
    def handler(job: Job) -> None:
        calls.append(job)

    jobs.send(Job(3))
    assert drain(jobs) == [DeliveryOutcome.HANDLED]
    assert calls == [Job(3)]


def test_consumer_of_a_channel_takes_its_queue_and_payload_type(consumers, jobs):
    @consumers.consumer(jobs, retry="10s")
    def handler(job: Job) -> None: ...

    spec = consumers.get(jobs.queue)
    assert spec.payload is Job and spec.handler is handler
    assert spec.codec.decode(b'{"n": 1}') == Job(1)


def test_consumer_of_a_channel_refuses_a_second_payload_type(consumers, jobs):
    with pytest.raises(KewImproperlyConfigured, match="already names its payload"):
        consumers.consumer(jobs, payload=dict)


def test_drain_works_inside_the_transaction_of_a_db_test(db, consumers, jobs):
    from kew_django.providers.database import DatabaseProvider

    calls = []

    @consumers.consumer(jobs, retry="0s")
    def fails_once(job: Job) -> None:
        calls.append(job)
        if len(calls) == 1:
            raise ValueError("first attempt fails")

    jobs.send(Job(1))
    provider = DatabaseProvider(poll_interval=0.05)
    try:
        assert drain(jobs, provider=provider) == [
            DeliveryOutcome.RETRIED,
            DeliveryOutcome.HANDLED,
        ]
    finally:
        provider.close()
    assert calls == [Job(1), Job(1)]
