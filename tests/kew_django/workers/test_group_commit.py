"""Group commit: what a worker holds is handled in one transaction, each handler in a savepoint."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import OperationalError, connection, transaction

from kew.errors import ConfigurationError
from kew_django import Channel
from kew_django.models import DeadLetter, OutboxMessage, ProcessedMessage, QueuedMessage
from kew_django.relay.publisher import Relay
from kew_django.workers import outage
from kew_django.workers.batch import BatchLimits
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.kew_django.batch_app import effects
from tests.kew_django.conftest import Job

MESSAGES = 5


@pytest.fixture
def business_rows(transactional_db):
    effects.create()
    yield
    effects.drop()


def publish(provider, queue: str, count: int) -> list[OutboxMessage]:
    rows = Channel(queue, payload=Job).send_many([Job(n) for n in range(count)])
    Relay(provider).relay_all()
    return rows


def run_until(worker: Worker, done: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Turn the worker's loop (``poll``: batches included) until ``done()``."""
    deadline = time.monotonic() + timeout
    try:
        while not done():
            assert time.monotonic() < deadline, f"not done; outcomes: {worker.stats.counts}"
            worker.poll(0.2)
    finally:
        worker.close()


class Recorder:
    """A handler that writes a business row and notes, at its commit, how many runs came before."""

    def __init__(self, *, fail_first_run_of: int | None = None):
        self.runs: list[int] = []
        self.commits: list[tuple[int, int]] = []  # (message, runs so far when it committed)
        self.fail_first_run_of = fail_first_run_of

    def __call__(self, job: Job) -> None:
        self.runs.append(job.n)
        effects.write(job.n)
        done = len(self.runs)
        transaction.on_commit(lambda: self.commits.append((job.n, len(self.runs))))
        if job.n == self.fail_first_run_of and self.runs.count(job.n) == 1:
            raise ValueError(f"first run of {job.n} fails (runs so far: {done})")

    def groups(self) -> list[int]:
        """Return the sizes of the groups of handlers that committed together, in order."""
        return list(Counter(seen for _, seen in self.commits).values())


def test_a_handler_that_raises_in_a_batch_rolls_back_alone_and_retries_alone(
    provider, queue, business_rows
):
    handler = Recorder(fail_first_run_of=2)
    spec = ConsumerSpec(queue, handler, payload=Job, retry="0.1s", idempotent=True, prefetch=10)
    worker = Worker(spec, provider, poll_interval=0.2)
    publish(provider, queue, MESSAGES)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert effects.counts() == Counter(range(MESSAGES))  # its failed run's row was rolled back
    assert Counter(handler.runs) == Counter([*range(MESSAGES), 2])
    assert sorted(n for n, _ in handler.commits) == list(range(MESSAGES))  # not the failed run's
    assert worker.stats.counts[DeliveryOutcome.RETRIED] == 1
    assert ProcessedMessage.objects.filter(consumer=queue).count() == MESSAGES


def test_the_deliveries_in_hand_commit_together_on_the_database_provider(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}  # the size alone bounds the batch here
    handler = Recorder(fail_first_run_of=2)
    spec = ConsumerSpec(queue, handler, payload=Job, retry="0.1s", idempotent=True, prefetch=10)
    worker = Worker(spec, database_provider, poll_interval=0.2)
    publish(database_provider, queue, MESSAGES)  # leased at once: all in hand
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert handler.groups() == [MESSAGES - 1, 1]  # one commit for the batch, one for the retry


@pytest.mark.parametrize("failing", [0, MESSAGES - 1], ids=["first", "last"])
def test_a_failing_handler_first_or_last_in_a_batch_runs_again_only_as_its_retry(
    database_provider, queue, business_rows, settings, failing
):
    # The first handler runs without a savepoint: its failure rolls its transaction back whole.
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}
    handler = Recorder(fail_first_run_of=failing)
    spec = ConsumerSpec(queue, handler, payload=Job, retry="0.1s", idempotent=True, prefetch=10)
    worker = Worker(spec, database_provider, poll_interval=0.2)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert Counter(handler.runs) == Counter([*range(MESSAGES), failing])
    assert effects.counts() == Counter(range(MESSAGES))
    assert handler.groups() == [MESSAGES - 1, 1]  # the others together, then the retry
    assert worker.stats.counts[DeliveryOutcome.RETRIED] == 1


def test_a_database_error_of_the_first_handler_is_its_own_failure_while_the_database_answers(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}
    runs: list[int] = []

    def handle(job: Job) -> None:
        runs.append(job.n)
        effects.write(job.n)
        if job.n == 0 and runs.count(0) == 1:
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM kew_no_such_table")  # a DatabaseError

    spec = ConsumerSpec(queue, handle, payload=Job, retry="0.1s", prefetch=10)
    worker = Worker(spec, database_provider, poll_interval=0.2)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert Counter(runs) == Counter([*range(MESSAGES), 0])  # not run again alone at once
    assert effects.counts() == Counter(range(MESSAGES))
    assert worker.stats.counts[DeliveryOutcome.RETRIED] == 1


def test_a_batch_is_bounded_by_batch_size(database_provider, queue, business_rows, settings):
    settings.KEW = {"CONSUMERS": {"BATCH_SIZE": 2, "BATCH_TIME": 30.0}}
    handler = Recorder()
    worker = Worker(ConsumerSpec(queue, handler, payload=Job, prefetch=10), database_provider)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: len(handler.commits) == MESSAGES)
    assert handler.groups() == [2, 2, 1]


def test_no_handler_starts_in_a_transaction_older_than_batch_time(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 1e-6}}  # over as soon as one handler ran
    handler = Recorder()
    worker = Worker(ConsumerSpec(queue, handler, payload=Job, prefetch=10), database_provider)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: len(handler.commits) == MESSAGES)
    assert handler.groups() == [1] * MESSAGES
    assert worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES


def test_long_work_consumers_are_not_batched(database_provider, queue):
    atomic = []

    def long_work(job: Job, work) -> None:
        atomic.append(connection.in_atomic_block)

    spec = ConsumerSpec(queue, long_work, payload=Job, prefetch=10, atomic=False)
    worker = Worker(spec, database_provider)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: len(atomic) == MESSAGES)
    assert atomic == [False] * MESSAGES


def test_a_database_outage_at_the_commit_holds_the_whole_batch_without_spending_attempts(
    database_provider, queue, business_rows, monkeypatch, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}  # one batch, however loaded the machine
    handler = Recorder()
    spec = ConsumerSpec(queue, handler, payload=Job, retry="0.1s", idempotent=True, prefetch=10)
    worker = Worker(spec, database_provider)
    worker.gate.backoff.first = 0.01  # the outage is over at the first look
    commit, down = connection.commit, [True]

    def commit_fails_once() -> None:
        if down[0] and len(handler.runs) == MESSAGES:  # the batch's commit
            raise OperationalError("server closed the connection unexpectedly (test)")
        commit()

    def database_down(using: str) -> bool:
        was, down[0] = down[0], False  # the database comes back
        return was

    publish(database_provider, queue, MESSAGES)
    monkeypatch.setattr(connection, "commit", commit_fails_once)
    monkeypatch.setattr(outage, "database_down", database_down)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert Counter(handler.runs) == Counter(list(range(MESSAGES)) * 2)  # the batch ran again
    assert effects.counts() == Counter(range(MESSAGES))
    assert handler.groups() == [MESSAGES]
    assert worker.stats.counts[DeliveryOutcome.RETRIED] == 0  # no attempt spent
    recorded = ProcessedMessage.objects.filter(consumer=queue).values_list("message_id", flat=True)
    assert all("#" not in message_id for message_id in recorded)  # originals, no retry ids


BAD_LIMITS = [("BATCH_SIZE", 0), ("BATCH_SIZE", 2.5), ("BATCH_TIME", 0), ("BATCH_TIME", "1")]


@pytest.mark.parametrize(("key", "value"), BAD_LIMITS)
def test_batch_limits_out_of_range_stop_the_worker_at_its_start(settings, key, value):
    settings.KEW = {"CONSUMERS": {key: value}}
    with pytest.raises(ConfigurationError, match=key):
        BatchLimits.from_settings()


def test_an_undecodable_delivery_is_set_aside_and_the_rest_commit_together(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}
    handler = Recorder()
    worker = Worker(ConsumerSpec(queue, handler, payload=Job, prefetch=10), database_provider)
    with database_provider.producer() as producer:
        producer.send(queue, b'{"n": 0}')
        producer.send(queue, b"not json")
        producer.send(queue, b'{"n": 1}')
    run_until(worker, lambda: sum(worker.stats.counts.values()) == 3)
    assert handler.groups() == [2]
    assert worker.stats.counts[DeliveryOutcome.DEAD] == 1
    assert DeadLetter.objects.get(queue=queue).reason == DeadLetter.Reason.UNDECODABLE


def test_on_the_database_provider_a_batch_s_acks_commit_with_its_handlers(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}
    left_at_commit: list[int] = []

    def handler(job: Job) -> None:
        effects.write(job.n)
        transaction.on_commit(
            lambda: left_at_commit.append(QueuedMessage.objects.filter(queue=queue).count())
        )

    worker = Worker(ConsumerSpec(queue, handler, payload=Job, prefetch=10), database_provider)
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES)
    assert left_at_commit == [0] * MESSAGES  # deleted by the commit itself, before any ack
    assert effects.counts() == Counter(range(MESSAGES))


@pytest.mark.postgresql_only  # another consumer's connection writes while the batch is open
def test_a_lease_taken_by_another_consumer_mid_batch_rolls_the_batch_back(
    database_provider, queue, business_rows, settings
):
    settings.KEW = {"CONSUMERS": {"BATCH_TIME": 30.0}}
    handler = Recorder()
    taken: list[int] = []

    def steal_the_last_row(job: Job) -> None:
        handler(job)
        if job.n == 0 and not taken:  # another consumer, on its own connection, takes a lease
            thread = threading.Thread(target=take_last_lease, args=(queue, taken))
            thread.start()
            thread.join()

    worker = Worker(
        ConsumerSpec(queue, steal_the_last_row, payload=Job, prefetch=10), database_provider
    )
    publish(database_provider, queue, MESSAGES)
    run_until(worker, lambda: worker.stats.counts[DeliveryOutcome.DUPLICATE] == 1)
    assert len(taken) == 1
    assert worker.stats.counts[DeliveryOutcome.HANDLED] == MESSAGES - 1
    assert effects.counts() == Counter(range(MESSAGES - 1))  # the last row's is the other's
    assert QueuedMessage.objects.filter(queue=queue).values_list("pk", flat=True)[0] == taken[0]
    assert handler.groups() == [1] * (MESSAGES - 1)  # rolled back, then each alone


def take_last_lease(queue: str, taken: list[int]) -> None:
    """Move the lease of ``queue``'s last row to another token and commit, as a consumer would."""
    try:
        row = QueuedMessage.objects.filter(queue=queue).order_by("-pk").first()
        assert row is not None
        QueuedMessage.objects.filter(pk=row.pk).update(lease_token=uuid.uuid4())
        taken.append(row.pk)
    finally:
        connection.close()
