"""A database outage spends no attempts; what the broker dead-letters shows up as a DeadLetter.

On PostgreSQL + Artemis. The outage lasts until each worker has backed
off ``BACK_OFFS`` times (through the doubling delays up to their 5 s
ceiling; before the fix the same test spent retries at once), or
``KEW_TEST_DB_OUTAGE`` seconds when that is set; ``bench/soak.py
--db-outage 180`` runs the three-minute version.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection, connections

import kew
from kew.providers.base import DeliveryOptions, Outgoing
from kew_django.models import DeadLetter, ProcessedMessage
from kew_django.workers.broker_dead_letters import BrokerDeadLetters
from kew_django.workers.deadletters import takes_dead_letter
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.kew_django.conftest import Job

OUTAGE = os.environ.get("KEW_TEST_DB_OUTAGE")
BACK_OFFS = 5
pytestmark = [pytest.mark.postgresql_only, pytest.mark.slow]


def dlq_is_empty_of(provider, queues) -> bool:
    receiver = provider.receiver("DLQ", selector=drainer_selector(queues))
    try:
        return receiver.receive(1.0) is None
    finally:
        receiver.close()


def drainer_selector(queues):
    from kew_django.workers.broker_dead_letters import selector

    return selector(queues)


def wait_out_the_outage(workers) -> None:
    """Return once every worker has backed off ``BACK_OFFS`` times (or after KEW_TEST_DB_OUTAGE)."""
    if OUTAGE is not None:
        time.sleep(float(OUTAGE))
        return
    deadline = time.monotonic() + 60
    while any(w.gate.backoff.failures < BACK_OFFS for w in workers):
        counts = [w.gate.backoff.failures for w in workers]
        assert time.monotonic() < deadline, f"back-offs {counts}, not {BACK_OFFS} each"
        time.sleep(0.1)


@pytest.mark.one_leg(1)
def test_a_database_outage_spends_no_attempts(
    transactional_db, postgres_server, artemis_url, queue
):
    assert connection.vendor == "postgresql"
    artemis = kew.connect(artemis_url)

    def handle(job: Job) -> None:
        ProcessedMessage.objects.create(consumer=f"{queue}.effect", message_id=str(job.n))

    spec = ConsumerSpec(queue, handle, payload=Job, retry="1s 1s", idempotent=True)
    with artemis.producer() as producer:
        producer.send_many(
            [
                Outgoing(
                    queue, f'{{"n": {i}}}'.encode(), DeliveryOptions(message_id=f"{queue}-{i}")
                )
                for i in range(100)
            ]
        )
    connections.close_all()
    postgres_server.stop()
    stop = threading.Event()
    workers = [Worker(spec, artemis, poll_interval=0.2) for _ in range(2)]
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_out_the_outage(workers)
        postgres_server.start()
        connection.close()
        deadline = time.monotonic() + 120
        while ProcessedMessage.objects.filter(consumer=f"{queue}.effect").count() < 100:
            assert time.monotonic() < deadline, "not every message was handled"
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        if not postgres_server.is_running():
            postgres_server.start()
    effects = ProcessedMessage.objects.filter(consumer=f"{queue}.effect")
    assert sorted(int(m) for m in effects.values_list("message_id", flat=True)) == list(range(100))
    # one attempt each: every record is the original id, none a retry "<id>#2"
    ids = set(ProcessedMessage.objects.filter(consumer=queue).values_list("message_id", flat=True))
    assert ids == {f"{queue}-{i}" for i in range(100)}
    assert all(w.stats.counts[DeliveryOutcome.RETRIED] == 0 for w in workers)
    assert sum(w.stats.counts[DeliveryOutcome.HANDLED] for w in workers) == 100
    assert not DeadLetter.objects.exists()
    assert dlq_is_empty_of(artemis, [queue])
    artemis.close()


def test_what_the_broker_dead_letters_becomes_a_dead_letter(transactional_db, artemis_url):
    queue, other = (f"test.dla.{uuid.uuid4().hex[:10]}" for _ in range(2))
    artemis = kew.connect(artemis_url)
    try:
        with artemis.producer() as producer:
            producer.send(queue, b'{"n": 7}', DeliveryOptions(message_id="m-7"))
            producer.send(other, b'{"n": 8}', DeliveryOptions(message_id="m-8"))
        for name in (queue, other):  # a consumer that dies before its ack, ten times
            for _ in range(10):
                receiver = artemis.receiver(name)
                assert receiver.receive(10) is not None
                receiver.close()
        drainer = BrokerDeadLetters(artemis, [queue])
        assert drainer.drain(10) == 1
        drainer.close()
        (letter,) = DeadLetter.objects.all()
        assert letter.queue == queue and letter.message_id == "m-7"
        assert bytes(letter.payload) == b'{"n": 7}' and letter.reason == "crashed"
        assert "dead-letter queue 'DLQ'" in letter.error
        # the other queue's message was left in the DLQ for whoever reads it
        with artemis.receiver("DLQ", selector=drainer_selector([other])) as receiver:
            delivery = receiver.receive(10)
            assert delivery is not None and delivery.message_id == "m-8"
            delivery.ack()
    finally:
        artemis.close()


def test_what_the_broker_dead_letters_reaches_its_consumers_on_exhausted_once(
    transactional_db, artemis_url
):
    queue = f"test.dla.{uuid.uuid4().hex[:10]}"
    given_up: list[tuple[Any, str, int]] = []

    @takes_dead_letter
    def exhausted(data, error, letter):
        given_up.append((data, str(error), letter.pk))

    spec = ConsumerSpec(queue, lambda data: None, on_exhausted=exhausted)
    artemis = kew.connect(artemis_url)
    try:
        with artemis.producer() as producer:
            producer.send(queue, b'{"n": 7}', DeliveryOptions(message_id="m-7"))
        for _ in range(10):  # a consumer that dies before its ack, ten times
            receiver = artemis.receiver(queue)
            assert receiver.receive(10) is not None
            receiver.close()
        drainer = BrokerDeadLetters(artemis, [queue], consumers={queue: spec})
        assert drainer.drain(10) == 1
        drainer.close()
        (letter,) = DeadLetter.objects.all()
        assert given_up == [({"n": 7}, letter.error, letter.pk)]
        assert letter.reason == DeadLetter.Reason.CRASHED
    finally:
        artemis.close()
