"""The database provider's prefetch: a batch leased in one statement, handed out in order."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kew.errors import ConfigurationError
from kew.providers.base import DeliveryOptions
from kew_django.models import QueuedMessage
from kew_django.providers.database import DatabaseProvider
from kew_django.providers.leases import Leases


def send(provider, queue, *bodies: bytes, deliver_at=None) -> None:
    with provider.producer() as producer:
        for body in bodies:
            producer.send(queue, body, DeliveryOptions(deliver_at=deliver_at))


def test_prefetch_leases_a_batch_with_one_statement_and_hands_it_out_in_order(
    database_provider, queue
):
    earlier = timezone.now() - timedelta(minutes=5)
    send(database_provider, queue, b"c", b"d")
    send(database_provider, queue, b"a", b"b", deliver_at=earlier)  # due before c and d
    with database_provider.receiver(queue, prefetch=10) as consumer:
        with CaptureQueriesContext(connection) as queries:
            first = consumer.receive(5)
        statements = [q["sql"] for q in queries.captured_queries]
        # PostgreSQL: one UPDATE ... RETURNING; SQLite: the head's ids, then that UPDATE
        assert len(statements) == (1 if connection.vendor == "postgresql" else 2), statements
        assert QueuedMessage.objects.filter(queue=queue, lease_token__isnull=False).count() == 4
        bodies = [first.payload]
        first.ack()
        with CaptureQueriesContext(connection) as queries:
            for _ in range(3):
                delivery = consumer.receive(5)
                bodies.append(delivery.payload)
                delivery.ack()
        assert all(q["sql"].startswith("DELETE") for q in queries.captured_queries), queries
    assert bodies == [b"a", b"b", b"c", b"d"]
    assert not QueuedMessage.objects.filter(queue=queue).exists()


def test_closing_releases_the_waiting_rows_to_their_place_not_as_redelivered(
    database_provider, queue
):
    send(database_provider, queue, b"1", b"2", b"3")
    places = dict(QueuedMessage.objects.filter(queue=queue).values_list("payload", "available_at"))
    consumer = database_provider.receiver(queue, prefetch=3)
    held = consumer.receive(5)
    assert held.payload == b"1"
    with database_provider.receiver(queue) as other:
        assert other.receive(0.1) is None, "the whole batch is leased"
    consumer.close()  # 1 was handed out and not acked; 2 and 3 waited here
    rows = {bytes(r.payload): r for r in QueuedMessage.objects.filter(queue=queue)}
    assert rows[b"1"].redelivered and not rows[b"2"].redelivered and not rows[b"3"].redelivered
    assert all(r.lease_token is None for r in rows.values())
    assert rows[b"2"].available_at == places[b"2"] and rows[b"3"].available_at == places[b"3"]
    with database_provider.receiver(queue, prefetch=3) as other:
        again = [other.receive(5) for _ in range(3)]
        assert [d.payload for d in again] == [b"2", b"3", b"1"]  # 1 went back as "now"
        assert [d.redelivered for d in again] == [False, False, True]
        for delivery in again:
            delivery.ack()


def test_a_row_is_not_handed_out_with_less_than_half_its_lease_left(transactional_db, queue):
    provider = DatabaseProvider(lease=1.0, poll_interval=0.05)
    send(provider, queue, b"slow", b"next")
    with provider.receiver(queue, prefetch=2) as consumer:
        slow = consumer.receive(5)
        time.sleep(0.6)  # the handler outlasts half a lease: "next" waited too long
        slow.ack()
        leased_before = QueuedMessage.objects.get(queue=queue).leased_until
        nxt = consumer.receive(5)
        assert nxt.payload == b"next" and not nxt.redelivered
        row = QueuedMessage.objects.get(queue=queue)
        assert row.leased_until > leased_before, "released and leased again, afresh"
        assert (row.leased_until - timezone.now()).total_seconds() > 0.5
        nxt.ack()
    provider.close()


def test_a_crashed_consumers_waiting_rows_come_back_when_the_lease_ends(transactional_db, queue):
    provider = DatabaseProvider(lease=0.5, poll_interval=0.05)
    send(provider, queue, b"1", b"2")
    crashed = provider.receiver(queue, prefetch=2)
    assert crashed.receive(5).payload == b"1"  # then its process dies: no ack, no close
    with provider.receiver(queue, prefetch=2) as other:
        again = [other.receive(5) for _ in range(2)]
        assert [d.payload for d in again] == [b"1", b"2"]
        assert all(d.redelivered for d in again)  # "2" may have been handed out too
        for delivery in again:
            delivery.ack()
    provider.close()


def test_prefetch_below_one_is_refused(database_provider, queue):
    with pytest.raises(ConfigurationError, match="prefetch must be at least 1"):
        database_provider.receiver(queue, prefetch=0)


def test_without_update_returning_the_orm_lease_keeps_order_and_redelivery(
    database_provider, queue, monkeypatch
):
    monkeypatch.setattr(Leases, "__init__", unsupported_leases(Leases.__init__))
    send(database_provider, queue, b"1", b"2")
    consumer = database_provider.receiver(queue, prefetch=5)
    with CaptureQueriesContext(connection) as queries:
        first = consumer.receive(5)
    assert not any("RETURNING" in q["sql"] for q in queries.captured_queries)
    assert first.payload == b"1" and not first.redelivered
    assert QueuedMessage.objects.filter(queue=queue, lease_token__isnull=False).count() == 1
    consumer.close()  # 1 handed out, not acked: back, redelivered
    with database_provider.receiver(queue) as other:
        again = [other.receive(5) for _ in range(2)]
        assert [(d.payload, d.redelivered) for d in again] == [(b"2", False), (b"1", True)]
        for delivery in again:
            delivery.ack()
    assert not QueuedMessage.objects.filter(queue=queue).exists()


def unsupported_leases(init):
    """Wrap ``Leases.__init__`` to act as on a database without UPDATE ... RETURNING."""

    def __init__(self, using):
        init(self, using)
        self.supported = False

    return __init__


@pytest.mark.postgresql_only
def test_a_lease_of_its_own_does_not_wait_for_the_wal_flush_and_changes_nothing_else(
    database_provider, queue
):
    send(database_provider, queue, b"a", b"b")
    leases = Leases(connection.alias)
    with connection.cursor() as cursor:  # as in production (the test cluster runs without it)
        cursor.execute("SET synchronous_commit = on")
    with CaptureQueriesContext(connection) as queries:
        own = leases.lease(queue, length=timedelta(seconds=30), token=uuid.uuid4(), limit=1)
    assert [row.payload for row in own] == [b"a"]
    assert "set_config('synchronous_commit', 'off', true)" in queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # for that lease's transaction alone
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        inside = leases.lease(queue, length=timedelta(seconds=30), token=uuid.uuid4(), limit=1)
        with connection.cursor() as cursor:  # the caller's transaction keeps waiting for it
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
    assert [row.payload for row in inside] == [b"b"]
    assert "set_config" not in queries.captured_queries[0]["sql"]
