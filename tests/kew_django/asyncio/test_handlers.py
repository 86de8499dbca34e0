"""Async def handlers: awaited on the worker's loop, with the ack, retry and dead-letter rules."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from kew.providers.base import DeliveryOptions
from kew_django import Channel
from kew_django.models import DeadLetter, ProcessedMessage
from kew_django.providers.database import DatabaseProvider
from kew_django.workers.deadletters import takes_dead_letter
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import WAIT, assert_empty
from tests.kew_django.conftest import Job, written
from tests.kew_django.workers.test_group_commit import run_until
from tests.kew_django.workers.test_worker import publish, pump


@pytest.fixture
def workers():
    """Build workers; their event loops are closed after the test."""
    made: list[Worker] = []

    def make(spec: ConsumerSpec, provider) -> Worker:
        made.append(Worker(spec, provider))
        return made[-1]

    yield make
    for worker in made:
        worker.loop.close()


def test_an_async_handler_is_awaited_on_one_loop_and_acked(provider, queue, workers):
    seen = []

    async def handler(job: Job):
        await asyncio.sleep(0)
        seen.append((job, asyncio.get_running_loop(), threading.current_thread().name))

    worker = workers(ConsumerSpec(queue, handler, payload=Job), provider)
    publish(provider, queue, Job(1), Job(2))
    outcomes = pump(worker, provider, queue, lambda: len(seen) == 2)
    assert outcomes == [DeliveryOutcome.HANDLED] * 2
    assert [job for job, _, _ in seen] == [Job(1), Job(2)]
    assert seen[0][1] is seen[1][1] is worker.loop.loop  # created once, reused
    assert seen[0][2] == f"kew-loop-{queue}"
    assert_empty(provider, queue)


def test_the_async_orm_runs_in_the_deliverys_transaction(provider, queue, workers):
    threads = []

    async def writes_then_fails(job: Job):
        await Group.objects.acreate(name=f"group-{job.n}")
        threads.append(await sync_to_async(threading.current_thread)())
        raise RuntimeError("after the write")

    spec = ConsumerSpec(queue, writes_then_fails, payload=Job)  # no retries
    publish(provider, queue, Job(1))
    pump(workers(spec, provider), provider, queue, DeadLetter.objects.exists)
    assert not Group.objects.exists()  # rolled back with the delivery's transaction
    assert threads == [threading.current_thread()]  # the worker's thread ran the ORM call


def test_retries_follow_the_schedule_then_an_async_exhausted_hook_runs_once(
    provider, queue, workers
):
    seen, exhausted = [], []

    async def always_fails(job: Job):
        seen.append(time.monotonic())
        await Group.objects.acreate(name=f"attempt-{len(seen)}")
        raise ValueError(f"no luck with {job.n}")

    async def on_exhausted(data, error):
        await Group.objects.acreate(name="gave up")  # commits with the dead letter
        exhausted.append((data, error))

    spec = ConsumerSpec(
        queue, always_fails, payload=Job, retry="0.5s 1s", on_exhausted=on_exhausted
    )
    (row,) = publish(provider, queue, Job(7))
    outcomes = pump(workers(spec, provider), provider, queue, lambda: exhausted)
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.RETRIED, DeliveryOutcome.DEAD]
    assert seen[1] - seen[0] >= 0.45 and seen[2] - seen[1] >= 0.95
    assert len(exhausted) == 1 and exhausted[0][0] == Job(7)
    assert isinstance(exhausted[0][1], ValueError)
    letter = DeadLetter.objects.get()
    assert letter.reason == DeadLetter.Reason.EXHAUSTED and letter.attempts == 3
    assert letter.message_id == row.message_id and "no luck with 7" in letter.error
    assert list(Group.objects.values_list("name", flat=True)) == ["gave up"]
    assert_empty(provider, queue, wait=1.0)


def test_an_exhausted_hook_that_takes_the_dead_letter_gets_it(database_provider, queue, workers):
    given = []

    @takes_dead_letter
    async def on_exhausted(data, error, letter):
        given.append((data, letter.pk))

    async def refuse(job):
        raise ValueError("never")

    spec = ConsumerSpec(queue, refuse, payload=Job, retry=None, on_exhausted=on_exhausted)
    publish(database_provider, queue, Job(1))
    pump(workers(spec, database_provider), database_provider, queue, lambda: given)
    assert given == [(Job(1), DeadLetter.objects.get().pk)]


def test_an_idempotent_async_handler_skips_a_redelivery(provider, queue, workers):
    calls = []

    async def handler(job: Job):
        await Group.objects.acreate(name=f"group-{job.n}")
        calls.append(job)

    worker = workers(ConsumerSpec(queue, handler, payload=Job, idempotent=True), provider)
    (row,) = publish(provider, queue, Job(42))
    with provider.receiver(queue) as consumer:
        first = consumer.receive(WAIT)
        first.ack = lambda: None  # the ack is lost: handled and committed, yet comes back
        assert worker.handle(first) is DeliveryOutcome.HANDLED
    if isinstance(provider, DatabaseProvider):  # its ack was part of the handler's commit
        assert_empty(provider, queue)
        provider.producer().send(queue, first.payload, redelivery_of(first))  # the relay's re-send
    with provider.receiver(queue) as consumer:
        again = consumer.receive(WAIT)
        assert again is not None and again.message_id == first.message_id
        assert worker.handle(again) is DeliveryOutcome.DUPLICATE
    assert calls == [Job(42)] and Group.objects.count() == 1
    assert ProcessedMessage.objects.get().message_id == row.message_id
    assert_empty(provider, queue)


def redelivery_of(delivery) -> DeliveryOptions:
    """The options of a second copy of ``delivery``: its id and headers (a relay's re-send)."""
    return DeliveryOptions(message_id=delivery.message_id, properties=dict(delivery.properties))


def test_asend_in_an_async_handler_joins_the_deliverys_transaction(
    database_provider, queue, workers
):
    onward = Channel(f"{queue}.onward", payload=Job)
    attempts = []

    async def forwards(job: Job):
        attempts.append(job)
        await onward.asend(Job(job.n + 1))
        if len(attempts) == 1:
            raise RuntimeError("the first attempt fails after sending")

    spec = ConsumerSpec(queue, forwards, payload=Job, retry="0s")
    publish(database_provider, queue, Job(1))
    outcomes = pump(
        workers(spec, database_provider), database_provider, queue, lambda: len(attempts) == 2
    )
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.HANDLED]
    assert [row.payload for row in written(onward.queue)] == [onward.codec.encode(Job(2))]


def test_the_loop_is_closed_when_the_worker_stops(database_provider, queue):
    calls = []

    async def handler(job: Job):
        calls.append(job)

    worker = Worker(ConsumerSpec(queue, handler, payload=Job), database_provider, poll_interval=0.1)
    publish(database_provider, queue, Job(1))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 15
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    loop, loop_thread = worker.loop.loop, worker.loop.thread
    stop.set()
    thread.join(10)
    assert calls == [Job(1)]
    assert loop is not None and loop.is_closed()
    assert loop_thread is not None and not loop_thread.is_alive()
    assert worker.loop.loop is None


def test_a_sync_handler_starts_no_loop(database_provider, queue, workers):
    calls = []
    worker = workers(ConsumerSpec(queue, calls.append, payload=Job), database_provider)
    publish(database_provider, queue, Job(1))
    pump(worker, database_provider, queue, lambda: calls)
    assert worker.loop.loop is None


def test_closing_the_loop_cancels_what_a_handler_left_running(database_provider, queue):
    left = []

    async def handler(job: Job):
        left.append(asyncio.create_task(asyncio.sleep(3600)))

    worker = Worker(ConsumerSpec(queue, handler, payload=Job), database_provider)
    publish(database_provider, queue, Job(1))
    pump(worker, database_provider, queue, lambda: left)
    started = time.monotonic()
    worker.stopped()
    assert time.monotonic() - started < 5
    assert left[0].cancelled()


def test_async_handlers_share_a_group_commit_and_a_failing_one_retries_alone(
    provider, queue, workers
):
    runs: list[int] = []

    async def handler(job: Job):
        runs.append(job.n)
        await Group.objects.acreate(name=f"group-{job.n}-run-{runs.count(job.n)}")
        if job.n == 2 and runs.count(2) == 1:
            raise ValueError("the first run of 2 fails")

    spec = ConsumerSpec(queue, handler, payload=Job, prefetch=20, retry="10ms")
    worker = workers(spec, provider)
    publish(provider, queue, *[Job(n) for n in range(5)])
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == 5)
    assert sorted(runs) == [0, 1, 2, 2, 3, 4]
    names = set(Group.objects.values_list("name", flat=True))
    assert names == {f"group-{n}-run-1" for n in (0, 1, 3, 4)} | {"group-2-run-2"}
    assert worker.stats.counts[DeliveryOutcome.RETRIED] == 1
