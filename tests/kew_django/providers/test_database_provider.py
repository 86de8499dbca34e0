"""The database provider beyond the contract: leases, transactions, browsing, settings."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from kew.errors import ConfigurationError
from kew.providers.base import Capability, DeliveryOptions
from kew_django.models import QueuedMessage
from kew_django.providers import build_provider
from kew_django.providers.database import DatabaseProvider
from tests.contract.helpers import assert_empty, receive_all


def test_capabilities_cover_everything_the_outbox_needs(database_provider):
    assert {
        Capability.PERSISTENCE,
        Capability.SCHEDULED_DELIVERY,
        Capability.MESSAGE_ID,
        Capability.DEDUPLICATION,
        Capability.PROPERTIES,
        Capability.BROWSING,
    } <= database_provider.capabilities


def test_the_database_has_no_dead_letter_address(database_provider):
    # Its consumers give up through the engine; nothing is moved aside behind their back.
    assert Capability.DEAD_LETTER_ADDRESS not in database_provider.capabilities


def test_expired_lease_redelivers_the_message(transactional_db, queue):
    provider = DatabaseProvider(lease=0.5, poll_interval=0.05)
    with provider.producer() as producer:
        producer.send(queue, b"work")
    crashed = provider.receiver(queue)
    first = crashed.receive(5)
    assert first is not None and not first.redelivered
    # the consumer's process dies: no ack, no close
    with provider.receiver(queue) as other:
        assert other.receive(0.1) is None, "leased rows are invisible to other consumers"
        again = other.receive(5)
        assert again is not None and again.payload == b"work" and again.redelivered
        again.ack()
    first.ack()  # too late: logged, harmless
    assert not QueuedMessage.objects.exists()
    provider.close()


def test_send_inside_a_rolled_back_transaction_is_not_queued(database_provider, queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        with database_provider.producer() as producer:
            producer.send(queue, b"never")
        raise RuntimeError
    assert_empty(database_provider, queue)


def test_ack_deletes_the_row_and_close_releases_unacked_ones(database_provider, queue):
    with database_provider.producer() as producer:
        producer.send(queue, b"a")
        producer.send(queue, b"b")
    consumer = database_provider.receiver(queue)
    consumer.receive(5).ack()
    consumer.receive(5)
    assert QueuedMessage.objects.filter(queue=queue).count() == 1
    consumer.close()
    row = QueuedMessage.objects.get(queue=queue)
    assert row.lease_token is None and row.redelivered


def test_browse_shows_waiting_messages_without_taking_them(database_provider, queue):
    with database_provider.producer() as producer:
        producer.send(queue, b"x", DeliveryOptions(message_id="m-1", properties={"k": "v"}))
    (seen,) = list(database_provider.browse(queue))
    assert (seen.payload, seen.message_id, seen.properties) == (b"x", "m-1", {"k": "v"})
    with pytest.raises(ConfigurationError):
        seen.ack()
    assert database_provider.pending(queue) == 1
    assert len(receive_all(database_provider, queue, 1)) == 1


def test_long_message_ids_are_refused(database_provider, queue):
    with pytest.raises(ConfigurationError, match="at most 100"):
        database_provider.producer().send(queue, b"x", DeliveryOptions(message_id="x" * 101))


def test_receive_wakes_when_a_message_arrives(database_provider, queue):
    import threading

    def later():
        time.sleep(0.3)
        with database_provider.producer() as producer:
            producer.send(queue, b"late")
        from django.db import connection

        connection.close()

    threading.Thread(target=later).start()
    started = time.monotonic()
    (delivery,) = receive_all(database_provider, queue, 1)
    assert delivery.payload == b"late" and time.monotonic() - started < 2.0


def test_database_url_selects_the_provider_and_alias(transactional_db):
    provider = build_provider("default", {"URL": "database://", "OPTIONS": {"lease": 60}})
    assert isinstance(provider, DatabaseProvider) and provider.using == "default"
    assert provider.lease.total_seconds() == 60
    with pytest.raises(ConfigurationError, match="unknown database 'nope'"):
        build_provider("default", {"URL": "database://nope"})


def test_database_url_carries_lease_and_poll_interval(transactional_db):
    provider = build_provider("default", {"URL": "database://?lease=30&poll_interval=0.25"})
    assert provider.lease.total_seconds() == 30
    assert provider.poll_interval == 0.25
    overridden = build_provider(
        "default", {"URL": "database://?lease=30", "OPTIONS": {"lease": 90}}
    )
    assert overridden.lease.total_seconds() == 90


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("database://?leese=30", "unknown database:// option.*leese.*known: lease, poll_interval"),
        ("database://?lease=soon", "take seconds"),
        ("database://?lease=0", "must be finite seconds from 0.001"),
    ],
)
def test_bad_database_url_options_are_named(transactional_db, url, error):
    with pytest.raises(ConfigurationError, match=error):
        build_provider("default", {"URL": url})
