"""Sending through the outbox: a message exists if and only if its transaction committed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kew.errors import ConfigurationError
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.relay.publisher import Relay
from tests.contract.helpers import assert_empty, receive_all
from tests.kew_django.conftest import Job

# Through the outbox (direct=false); sends that skip it are in test_direct.py.
pytestmark = pytest.mark.usefixtures("outbox_sends")


class Boom(Exception):
    pass


def test_rolled_back_send_leaves_nothing_to_publish(provider, queue):
    jobs = Channel(queue, payload=Job)
    with pytest.raises(Boom), transaction.atomic():
        jobs.send(Job(1))
        raise Boom
    assert not OutboxMessage.objects.exists()
    assert Relay(provider).relay_all() == 0
    assert_empty(provider, queue)


def test_committed_send_is_delivered_once_with_the_row_id(provider, queue):
    jobs = Channel(queue, payload=Job)
    with transaction.atomic():
        row = jobs.send(Job(1, "first"))
    assert Relay(provider).relay_all() == 1
    (delivery,) = receive_all(provider, queue, 1)
    assert jobs.codec.decode(delivery.payload) == Job(1, "first")
    assert delivery.message_id == str(row.id)
    row.refresh_from_db()
    assert row.status == OutboxMessage.Status.SENT and row.sent_at is not None
    assert_empty(provider, queue)


def test_send_outside_a_transaction_is_committed_at_once(transactional_db, queue):
    row = Channel(queue, payload=Job).send(Job(2))
    assert OutboxMessage.objects.get(pk=row.pk).status == OutboxMessage.Status.PENDING


def test_send_joins_the_transaction_of_its_caller(db, queue):
    jobs = Channel(queue, payload=Job)
    with transaction.atomic():
        jobs.send(Job(1))
        with pytest.raises(Boom), transaction.atomic():
            jobs.send(Job(2))
            raise Boom
    assert [jobs.codec.decode(bytes(r.payload)) for r in OutboxMessage.objects.all()] == [Job(1)]


def test_send_many_is_one_insert_and_keeps_its_order(provider, queue):
    jobs = Channel(queue, payload=Job)
    with CaptureQueriesContext(connection) as queries:
        rows = jobs.send_many([Job(i) for i in range(50)])
    inserts = [q for q in queries.captured_queries if q["sql"].lstrip().startswith("INSERT")]
    assert len(rows) == 50 and len(inserts) == 1
    Relay(provider, batch_size=7).relay_all()
    got = receive_all(provider, queue, 50)
    assert [jobs.codec.decode(d.payload).n for d in got] == list(range(50))


def test_send_at_and_send_after_schedule_the_message(db, queue):
    jobs = Channel(queue, payload=Job)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert jobs.send_at(Job(1), when).deliver_at == when
    later = jobs.send_after(Job(2), timedelta(minutes=5)).deliver_at
    assert timedelta(minutes=4) < later - timezone.now() <= timedelta(minutes=5)
    with pytest.raises(ConfigurationError, match="aware"):
        jobs.send_at(Job(3), datetime(2030, 1, 1))


def test_scheduled_message_is_not_delivered_before_its_time(provider, queue):
    jobs = Channel(queue, payload=Job)
    earliest = time.time() + 1.5  # the scheduled message may not come before this
    jobs.send_after(Job(1), timedelta(seconds=1.5))
    jobs.send(Job(2))
    Relay(provider).relay_all()
    (now,) = receive_all(provider, queue, 1)
    assert jobs.codec.decode(now.payload) == Job(2)
    # On a loaded machine the steps above can take most of the delay: watch the
    # queue for what is left of it, then check when the scheduled one came.
    assert_empty(provider, queue, wait=max(0.0, earliest - time.time() - 0.1))
    (later,) = receive_all(provider, queue, 1)
    arrived = time.time()
    assert jobs.codec.decode(later.payload) == Job(1)
    assert arrived >= earliest - 0.05, f"delivered {earliest - arrived:.3f}s early"


def test_properties_travel_as_headers(provider, queue):
    jobs = Channel(queue, payload=Job)
    row = jobs.send(Job(1), properties={"tenant": "mri-lab"})
    assert row.headers == {"tenant": "mri-lab"}
    Relay(provider).relay_all()
    (delivery,) = receive_all(provider, queue, 1)
    assert delivery.properties["tenant"] == "mri-lab"
    with pytest.raises(ConfigurationError, match="property"):
        jobs.send(Job(2), properties={"bad name": "x"})


def test_send_now_bypasses_the_outbox(transactional_db, providers, settings, queue):
    settings.KEW = {"PROVIDERS": {"default": {"BACKEND": "kew.providers.memory.MemoryProvider"}}}
    jobs = Channel(queue, payload=Job)
    with pytest.raises(Boom), transaction.atomic():
        message_id = jobs.send_now(Job(7))
        raise Boom
    assert not OutboxMessage.objects.exists()
    provider = providers["default"]
    (delivery,) = receive_all(provider, queue, 1)
    assert delivery.message_id == message_id


def test_channel_checks_its_queue_name():
    with pytest.raises(ConfigurationError):
        Channel("")
    assert "imports" in repr(Channel("imports", payload=Job))


def test_a_sent_row_reads_back_as_the_orm_would_have_written_it(db, queue):
    jobs = Channel(queue, payload=Job)
    when = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)
    row = jobs.send_at(Job(3, "x"), when, properties={"tenant": "mri-lab"})
    assert not row._state.adding and row._state.db == "default"
    stored = OutboxMessage.objects.get(pk=row.pk)
    assert jobs.codec.decode(bytes(stored.payload)) == Job(3, "x")
    assert (stored.queue, stored.content_type, stored.headers) == (
        queue,
        jobs.codec.content_type,
        {"tenant": "mri-lab"},
    )
    assert (stored.deliver_at, stored.created_at) == (when, row.created_at)
    assert (stored.status, stored.attempts, stored.last_error) == ("pending", 0, "")
    assert (stored.sent_at, stored.retry_at, stored.requeue_of) == (None, None, "")


def test_send_compiles_its_insert_once_and_writes_one_statement(db, queue, monkeypatch):
    from kew_django.outbox import insert

    compiled = []
    real = insert.InsertQuery

    def counting(model):
        compiled.append(model)
        return real(model)

    monkeypatch.setattr(insert, "InsertQuery", counting)
    jobs = Channel(queue, payload=Job)
    with CaptureQueriesContext(connection) as queries:
        rows = [jobs.send(Job(n)) for n in range(3)]
    inserts = [q for q in queries.captured_queries if q["sql"].lstrip().startswith("INSERT")]
    assert len(compiled) == 1 and len(inserts) == 3
    assert OutboxMessage.objects.filter(pk__in=[r.pk for r in rows]).count() == 3
