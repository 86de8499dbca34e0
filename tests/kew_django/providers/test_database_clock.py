"""The database provider's leases and due times follow the database's clock, not the host's.

Here the host's clock (``django.utils.timezone.now``) is shifted in this
process; ``tests/scale/test_skewed_clock.py`` runs whole workers with a
shifted clock beside normal ones.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kew.providers.base import DeliveryOptions
from kew_django.models import QueuedMessage

SKEW = timedelta(seconds=60)


@pytest.fixture
def clock(monkeypatch):
    """Call ``clock(offset)`` to shift this host's clock by ``offset`` (``clock(None)``: back)."""
    real = timezone.now

    def shift(offset: timedelta | None) -> None:
        if offset is None:
            monkeypatch.setattr(timezone, "now", real)
        else:
            monkeypatch.setattr(timezone, "now", lambda: real() + offset)

    return shift


def send(provider, queue: str, body: bytes, deliver_at=None) -> None:
    with provider.producer() as producer:
        producer.send(queue, body, DeliveryOptions(deliver_at=deliver_at))


def test_a_consumer_whose_clock_runs_ahead_does_not_take_a_held_lease(
    database_provider, queue, clock
):
    send(database_provider, queue, b"held")
    with database_provider.receiver(queue) as holder:
        assert holder.receive(5).payload == b"held"
        clock(SKEW)
        with database_provider.receiver(queue) as ahead:
            assert ahead.receive(0.3) is None


def test_renewals_by_a_consumer_whose_clock_runs_behind_keep_its_lease(
    database_provider, queue, clock
):
    send(database_provider, queue, b"held")
    clock(-SKEW)
    with database_provider.receiver(queue) as behind:
        delivery = behind.receive(5)
        assert delivery.payload == b"held"
        assert delivery.renew()
        clock(None)
        with database_provider.receiver(queue) as other:
            assert other.receive(0.3) is None
        row = QueuedMessage.objects.get(queue=queue)
        assert row.leased_until > timezone.now() + timedelta(seconds=delivery.lease / 2)


def test_a_scheduled_message_is_not_due_early_for_a_consumer_whose_clock_runs_ahead(
    database_provider, queue, clock
):
    send(database_provider, queue, b"later", deliver_at=timezone.now() + timedelta(seconds=30))
    clock(SKEW)
    with database_provider.receiver(queue) as ahead:
        assert ahead.receive(0.3) is None


def test_a_message_sent_by_a_host_whose_clock_runs_ahead_is_due_at_once(
    database_provider, queue, clock
):
    clock(SKEW)
    send(database_provider, queue, b"now")
    clock(None)
    with database_provider.receiver(queue) as consumer:
        assert consumer.receive(2).payload == b"now"


def test_a_retry_delay_from_a_host_whose_clock_runs_ahead_is_counted_on_the_databases_clock(
    database_provider, queue, clock
):
    clock(SKEW)  # a retry "in half a second", on this host's clock
    send(database_provider, queue, b"retry", deliver_at=timezone.now() + timedelta(seconds=0.5))
    clock(None)
    with database_provider.receiver(queue) as consumer:
        assert consumer.receive(0.2) is None, "due half a second after it was sent"
        assert consumer.receive(5).payload == b"retry"


def test_a_retry_delay_from_a_host_whose_clock_runs_behind_is_not_shortened(
    database_provider, queue, clock
):
    clock(-SKEW)
    send(database_provider, queue, b"retry", deliver_at=timezone.now() + timedelta(seconds=30))
    clock(None)
    with database_provider.receiver(queue) as consumer:
        assert consumer.receive(0.3) is None
    row = QueuedMessage.objects.get(queue=queue)
    assert row.available_at > timezone.now() + timedelta(seconds=25)
