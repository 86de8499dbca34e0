"""Consumer workers: acks, retries on schedule, dead letters, idempotency."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError

from kew.providers.base import DeliveryOptions
from kew.schedule import RepeatAction
from kew_django import Channel, PermanentError
from kew_django.models import DeadLetter, OutboxMessage, ProcessedMessage, QueuedMessage
from kew_django.relay.publisher import Relay
from kew_django.workers.deadletters import takes_dead_letter
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty
from tests.kew_django.conftest import Job


def pump(worker: Worker, provider, queue: str, until, *, timeout: float = 15.0) -> list:
    """Feed deliveries of ``queue`` to ``worker`` until ``until()`` holds; return the outcomes."""
    outcomes = []
    deadline = time.monotonic() + timeout
    with provider.receiver(queue) as consumer:
        while not until():
            assert time.monotonic() < deadline, f"gave up waiting; outcomes so far: {outcomes}"
            delivery = consumer.receive(0.2)
            if delivery is not None:
                outcomes.append(worker.handle(delivery))
    return outcomes


def publish(provider, queue: str, *items) -> list[OutboxMessage | QueuedMessage]:
    rows = Channel(queue, payload=Job).send_many(list(items))
    Relay(provider).relay_all()
    return rows


def test_handler_gets_the_data_and_the_delivery_is_acked(provider, queue):
    calls = []
    worker = Worker(ConsumerSpec(queue, calls.append, payload=Job), provider)
    publish(provider, queue, Job(1), Job(2))
    assert pump(worker, provider, queue, lambda: len(calls) == 2) == [DeliveryOutcome.HANDLED] * 2
    assert calls == [Job(1), Job(2)]
    assert_empty(provider, queue)


def test_retry_schedule_is_honoured_then_exhausted_handler_runs_once(provider, queue):
    seen, exhausted = [], []

    def always_fails(job: Job):
        seen.append(time.monotonic())
        raise ValueError(f"no luck with {job.n}")

    spec = ConsumerSpec(
        queue,
        always_fails,
        payload=Job,
        retry="0.5s 1s",
        on_exhausted=lambda data, error: exhausted.append((data, error)),
    )
    worker = Worker(spec, provider)
    (row,) = publish(provider, queue, Job(7))
    outcomes = pump(worker, provider, queue, lambda: exhausted)
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.RETRIED, DeliveryOutcome.DEAD]
    assert seen[1] - seen[0] >= 0.45 and seen[2] - seen[1] >= 0.95
    assert len(exhausted) == 1
    data, error = exhausted[0]
    assert data == Job(7) and isinstance(error, ValueError)
    letter = DeadLetter.objects.get()
    assert letter.reason == DeadLetter.Reason.EXHAUSTED and letter.state == DeadLetter.State.DEAD
    assert letter.message_id == row.message_id and letter.attempts == 3
    assert letter.queue == queue and bytes(letter.payload) == bytes(row.payload)
    assert "ValueError: no luck with 7" in letter.error and "always_fails" in letter.traceback
    assert letter.first_failed_at < letter.last_failed_at
    assert not any(k.startswith("kew-") for k in letter.headers)
    assert_empty(provider, queue, wait=1.0)


def test_retries_carry_deterministic_ids(database_provider, queue):
    ids = []
    spec = ConsumerSpec(queue, lambda job: RepeatAction.RETRY, payload=Job, retry="0s 0s")
    worker = Worker(spec, database_provider)
    (row,) = publish(database_provider, queue, Job(1))
    with database_provider.receiver(queue) as consumer:
        while len(ids) < 3:
            delivery = consumer.receive(5)
            ids.append(delivery.message_id)
            worker.handle(delivery)
    assert ids == [row.message_id, f"{row.message_id}#2", f"{row.message_id}#3"]


def test_repeat_answer_retries_and_exhausted_gets_no_error(provider, queue):
    exhausted = []
    spec = ConsumerSpec(
        queue,
        lambda job: RepeatAction.RETRY,
        payload=Job,
        retry="0.1s",
        on_exhausted=lambda data, error: exhausted.append((data, error)),
    )
    publish(provider, queue, Job(3))
    outcomes = pump(Worker(spec, provider), provider, queue, lambda: exhausted)
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.DEAD]
    assert exhausted == [(Job(3), None)]


def test_permanent_error_dead_letters_at_once(provider, queue):
    exhausted = []

    def refuse(job):
        raise PermanentError("the file is not an image")

    spec = ConsumerSpec(
        queue,
        refuse,
        payload=Job,
        retry="10s 10s",
        on_exhausted=lambda data, error: exhausted.append(error),
    )
    publish(provider, queue, Job(1))
    assert pump(Worker(spec, provider), provider, queue, lambda: exhausted) == [
        DeliveryOutcome.DEAD
    ]
    assert isinstance(exhausted[0], PermanentError)
    letter = DeadLetter.objects.get()
    assert letter.reason == DeadLetter.Reason.FAILED and letter.attempts == 1
    assert_empty(provider, queue, wait=1.0)


def test_poison_payload_becomes_a_dead_letter_and_the_worker_carries_on(provider, queue):
    calls = []
    spec = ConsumerSpec(queue, calls.append, payload=Job)
    with provider.producer() as producer:
        producer.send(queue, b"\xffnot json", DeliveryOptions(message_id="poison-1"))
        producer.send(
            queue, b'{"n": "not a number", "extra": 1}', DeliveryOptions(message_id="poison-2")
        )
    publish(provider, queue, Job(5))
    stop = threading.Event()
    thread = threading.Thread(target=Worker(spec, provider, poll_interval=0.2).run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert calls == [Job(5)]
    letters = {d.message_id: d for d in DeadLetter.objects.all()}
    assert set(letters) == {"poison-1", "poison-2"}
    assert {d.reason for d in letters.values()} == {DeadLetter.Reason.UNDECODABLE}
    assert bytes(letters["poison-1"].payload) == b"\xffnot json"
    assert "UTF-8 JSON" in letters["poison-1"].error
    assert "extra" in letters["poison-2"].error


def test_handler_runs_in_a_transaction(provider, queue):
    def writes_then_fails(job):
        Group.objects.create(name=f"group-{job.n}")
        raise RuntimeError("after the write")

    spec = ConsumerSpec(queue, writes_then_fails, payload=Job)  # no retries
    publish(provider, queue, Job(1))
    pump(Worker(spec, provider), provider, queue, DeadLetter.objects.exists)
    assert not Group.objects.exists()


def test_idempotent_consumer_records_the_id_and_skips_a_redelivery(database_provider, queue):
    calls = []
    spec = ConsumerSpec(queue, calls.append, payload=Job, idempotent=True)
    worker = Worker(spec, database_provider)
    options = DeliveryOptions(message_id="order-42")
    with database_provider.receiver(queue) as consumer:
        for _ in range(2):
            with database_provider.producer() as producer:
                producer.send(queue, b'{"n": 42}', options)
            worker.handle(consumer.receive(5))
    assert calls == [Job(42)]
    assert ProcessedMessage.objects.filter(consumer=queue, message_id="order-42").count() == 1


def test_idempotent_consumer_retries_are_not_mistaken_for_duplicates(database_provider, queue):
    answers = [RepeatAction.RETRY, None]
    calls = []

    def handler(job):
        calls.append(job)
        return answers[len(calls) - 1]

    spec = ConsumerSpec(queue, handler, payload=Job, idempotent=True, retry="0s")
    publish(database_provider, queue, Job(1))
    outcomes = pump(
        Worker(spec, database_provider), database_provider, queue, lambda: len(calls) == 2
    )
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.HANDLED]


def test_transient_database_errors_are_retried(provider, queue):
    calls = []

    def flaky(job):
        calls.append(job)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")

    spec = ConsumerSpec(queue, flaky, payload=Job, retry="0.1s")
    publish(provider, queue, Job(1))
    outcomes = pump(Worker(spec, provider), provider, queue, lambda: len(calls) == 2)
    assert outcomes == [DeliveryOutcome.RETRIED, DeliveryOutcome.HANDLED]


def test_exhausted_handler_is_not_called_again_when_the_ack_was_lost(database_provider, queue):
    exhausted = []
    spec = ConsumerSpec(
        queue,
        lambda job: RepeatAction.RETRY,
        payload=Job,
        on_exhausted=lambda data, error: exhausted.append(data),
    )
    worker = Worker(spec, database_provider)
    publish(database_provider, queue, Job(1))
    consumer = database_provider.receiver(queue)
    delivery = consumer.receive(5)
    delivery.ack = lambda: None  # the process dies before the ack
    worker.handle(delivery)
    consumer.close()
    with database_provider.receiver(queue) as consumer:
        again = consumer.receive(5)
        assert again.redelivered
        assert worker.handle(again) is DeliveryOutcome.DEAD
    assert exhausted == [Job(1)]
    assert DeadLetter.objects.count() == 1


def test_failing_exhausted_handler_is_noted_on_the_dead_letter(database_provider, queue):
    def broken(data, error):
        raise RuntimeError("mail server down")

    spec = ConsumerSpec(queue, lambda job: RepeatAction.RETRY, payload=Job, on_exhausted=broken)
    publish(database_provider, queue, Job(1))
    pump(Worker(spec, database_provider), database_provider, queue, DeadLetter.objects.exists)
    assert "on_exhausted failed" in DeadLetter.objects.get().error


def test_an_exhausted_handler_that_takes_the_dead_letter_gets_the_one_written(
    database_provider, queue
):
    given = []

    @takes_dead_letter
    def exhausted(data, error, letter):
        given.append((data, letter.pk, DeadLetter.objects.filter(pk=letter.pk).exists()))

    spec = ConsumerSpec(queue, lambda job: RepeatAction.RETRY, payload=Job, on_exhausted=exhausted)
    publish(database_provider, queue, Job(1))
    pump(Worker(spec, database_provider), database_provider, queue, lambda: given)
    assert given == [(Job(1), DeadLetter.objects.get().pk, True)]


@pytest.mark.parametrize("concurrency", [3])
def test_several_worker_threads_share_a_queue(provider, queue, concurrency):
    calls, lock = [], threading.Lock()

    def handler(job):
        time.sleep(0.01)
        with lock:
            calls.append(job.n)

    spec = ConsumerSpec(queue, handler, payload=Job)
    publish(provider, queue, *[Job(i) for i in range(60)])
    stop = threading.Event()
    threads = [
        threading.Thread(target=Worker(spec, provider, poll_interval=0.2).run, args=(stop,))
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(calls) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert sorted(calls) == list(range(60))
