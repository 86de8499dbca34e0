"""Kew's lease as a prepared statement on PostgreSQL, when the connection allows them."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from kew.providers.base import DeliveryOptions
from kew_django.providers.database import DatabaseProvider

pytestmark = pytest.mark.postgresql_only


@pytest.fixture
def prepare_threshold(transactional_db):
    """Set the connection's ``prepare_threshold`` (Django's default: None, none prepared)."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold

    def set_to(value):
        raw.prepare_threshold = value

    yield set_to
    raw.prepare_threshold = before


def leases_prepared() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%SKIP LOCKED%"],
        )
        return cursor.fetchone()[0]


def lease_and_ack(queue: str, count: int) -> list:
    provider = DatabaseProvider(poll_interval=0.05)
    with provider.producer() as producer:
        for n in range(count):
            producer.send(queue, b'{"n": %d}' % n, DeliveryOptions(message_id=f"{queue}-{n}"))
    got = []
    with provider.receiver(queue) as receiver:
        for _ in range(count):
            delivery = receiver.receive(5.0)
            assert delivery is not None, f"{len(got)} of {count}"
            got.append(delivery)
            delivery.ack()
        assert receiver.receive(0.1) is None
    return got


def test_with_prepared_statements_allowed_the_lease_is_prepared_once(prepare_threshold):
    prepare_threshold(5)
    queue = f"test.prepared.{uuid.uuid4().hex[:8]}"
    got = lease_and_ack(queue, 3)
    assert [d.payload for d in got] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert [d.message_id for d in got] == [f"{queue}-{n}" for n in range(3)]
    assert all(isinstance(d.properties, dict) and not d.redelivered for d in got)
    assert leases_prepared() == 1


def test_rows_leased_by_the_prepared_lease_go_back_to_their_place(prepare_threshold):
    prepare_threshold(5)
    queue = f"test.prepared.{uuid.uuid4().hex[:8]}"
    provider = DatabaseProvider(poll_interval=0.05)
    with provider.producer() as producer:
        for n in range(3):
            producer.send(queue, b"%d" % n)
    with provider.receiver(queue, prefetch=3) as receiver:
        first = receiver.receive(5.0)
        assert first is not None and first.payload == b"0"
    # closed: the two waiting rows went back to their places (each one's old available_at)
    with provider.receiver(queue) as receiver:
        again = [receiver.receive(5.0) for _ in range(3)]
        assert [d.payload for d in again if d is not None][:2] == [b"1", b"2"]
        for delivery in again:
            assert delivery is not None
            delivery.ack()


def test_with_prepared_statements_off_as_django_leaves_them_nothing_is_prepared(
    prepare_threshold,
):
    prepare_threshold(None)
    lease_and_ack(f"test.prepared.{uuid.uuid4().hex[:8]}", 2)
    assert leases_prepared() == 0
