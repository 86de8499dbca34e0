"""Sending to the database provider (``direct``, its default): one queue row, no relay."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from kew.errors import ConfigurationError
from kew_django import Channel, Topic
from kew_django.models import OutboxMessage, QueuedMessage
from kew_django.outbox.direct import direct_provider
from kew_django.providers import get_provider
from kew_django.providers.database import DatabaseProvider
from kew_django.relay.publisher import Relay
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty, receive_all
from tests.kew_django.conftest import Job


class Boom(Exception):
    pass


@pytest.fixture
def direct(settings, providers, transactional_db) -> DatabaseProvider:
    """The default provider: the database, whose sends are written straight to its queues."""
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://?poll_interval=0.05"}}}
    provider = get_provider("default")
    assert isinstance(provider, DatabaseProvider) and provider.direct
    return provider


def inserts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("INSERT")]


def test_a_send_is_one_queue_row_and_no_outbox_row(direct, queue):
    jobs = Channel(queue, payload=Job)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        Group.objects.create(name=f"business {queue}")
        row = jobs.send(Job(1, "first"), properties={"tenant": "acme"})
    assert len(inserts(queries)) == 2  # the business row and the queue row
    assert not OutboxMessage.objects.exists()
    assert QueuedMessage.objects.filter(queue=queue).count() == 1
    assert Relay(direct).relay_all() == 0  # nothing for the relay
    (delivery,) = receive_all(direct, queue, 1)
    assert jobs.codec.decode(delivery.payload) == Job(1, "first")
    assert delivery.message_id == row.message_id and len(row.message_id) == 36
    assert delivery.properties["tenant"] == "acme"
    assert_empty(direct, queue)


def test_a_rolled_back_send_leaves_no_row(direct, queue):
    jobs = Channel(queue, payload=Job)
    with transaction.atomic():
        jobs.send(Job(1))
        with pytest.raises(Boom), transaction.atomic():
            jobs.send(Job(2))
            raise Boom
    with pytest.raises(Boom), transaction.atomic():
        jobs.send(Job(3))
        raise Boom
    assert [jobs.codec.decode(d.payload) for d in receive_all(direct, queue, 1)] == [Job(1)]
    assert_empty(direct, queue)


def test_send_many_is_one_insert_and_keeps_its_order(direct, queue):
    jobs = Channel(queue, payload=Job)
    with CaptureQueriesContext(connection) as queries:
        rows = jobs.send_many([Job(i) for i in range(50)])
    assert len(rows) == 50 and len(inserts(queries)) == 1
    assert len({row.message_id for row in rows}) == 50
    got = receive_all(direct, queue, 50)
    assert [jobs.codec.decode(d.payload).n for d in got] == list(range(50))
    assert jobs.send_many([]) == []


def test_a_delayed_send_is_not_delivered_before_its_time(direct, queue):
    jobs = Channel(queue, payload=Job)
    sent = time.monotonic()
    jobs.send_after(Job(1), timedelta(seconds=1))
    jobs.send(Job(2))
    first = receive_all(direct, queue, 1)
    assert [jobs.codec.decode(d.payload) for d in first] == [Job(2)]
    (later,) = receive_all(direct, queue, 1, timeout=5)
    assert jobs.codec.decode(later.payload) == Job(1) and time.monotonic() - sent >= 1.0


def test_a_worker_consumes_a_direct_send(direct, queue):
    calls: list[Job] = []
    worker = Worker(ConsumerSpec(queue, calls.append, payload=Job), direct)
    Channel(queue, payload=Job).send(Job(7))
    with direct.receiver(queue) as consumer:
        delivery = consumer.receive(5)
        assert delivery is not None
        assert worker.handle(delivery) == DeliveryOutcome.HANDLED
    assert calls == [Job(7)]
    assert_empty(direct, queue)


def test_direct_is_on_by_default_off_when_asked_and_for_another_database(
    settings, providers, db, queue
):
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://?direct=false"}}}
    assert direct_provider("default", "default") is None
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    providers.close_all()
    assert direct_provider("default", "default") is get_provider("default")
    assert direct_provider("default", "elsewhere") is None  # the relay carries it over
    assert (
        DatabaseProvider().direct and not DatabaseProvider.from_url("database://?direct=0").direct
    )


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_direct_takes_true_or_false(value):
    with pytest.raises(ConfigurationError, match="direct takes true or false"):
        DatabaseProvider.from_url(f"database://?direct={value}")


def test_a_topic_is_still_published_through_the_outbox_and_fanned_out(direct, queue):
    topic = Topic(f"{queue}.events", payload=Job)
    audit = direct.subscribe(topic.name, "audit")
    mail = direct.subscribe(topic.name, "mail")
    with transaction.atomic():
        topic.publish(Job(5, "event"))
    assert OutboxMessage.objects.count() == 1  # the relay fans it out, not the sender
    assert not QueuedMessage.objects.exists()
    assert Relay(direct).relay_all() == 1
    for subscription in (audit, mail):
        (delivery,) = receive_all(direct, subscription, 1)
        assert topic.codec.decode(delivery.payload) == Job(5, "event")
