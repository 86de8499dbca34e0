"""A rejected row backs off between attempts; rows left pending are not overtaken."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

import kew
from kew.errors import PartlyStored
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.relay.publisher import Relay
from tests.kew_django.conftest import Job, Wrapped


def test_a_rejected_row_waits_longer_after_each_attempt(database_provider, queue):
    (row,) = Channel(queue, payload=Job).send_many([Job(1)])
    refusing = Wrapped(database_provider)
    refusing.reject_ids = {str(row.pk)}
    relay = Relay(refusing, max_attempts=5, backoff_max=30)
    delays = []
    for attempt in (1, 2, 3):
        before = timezone.now()
        assert relay.relay_batch() == 1
        row.refresh_from_db()
        assert row.attempts == attempt and row.status == "pending"
        assert relay.relay_batch() == 0  # backing off: not claimed at the next poll
        delays.append((row.retry_at - before).total_seconds())
        OutboxMessage.objects.filter(pk=row.pk).update(retry_at=timezone.now())  # time passes
    assert 1.5 < delays[0] < delays[1] < delays[2] <= 30
    assert delays[1] > 1.8 * delays[0]


def test_a_transient_rejection_does_not_spend_every_attempt_in_seconds(database_provider, queue):
    (row,) = Channel(queue, payload=Job).send_many([Job(1)])
    refusing = Wrapped(database_provider)
    refusing.reject_ids = {str(row.pk)}
    relay = Relay(refusing, max_attempts=5)
    for _ in range(20):  # twenty polls in a row
        relay.relay_batch()
    row.refresh_from_db()
    assert row.attempts == 1 and row.status == "pending"
    refusing.reject_ids.clear()  # the broker takes it now
    OutboxMessage.objects.filter(pk=row.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    assert relay.relay_batch() == 1
    row.refresh_from_db()
    assert row.status == "sent"


def test_rows_left_pending_by_a_rejection_are_not_overtaken_by_a_later_batch(provider, queue):
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(200)])
    recording = Wrapped(provider)
    recording.reject_ids = {str(rows[10].pk)}
    assert Relay(recording, batch_size=50, threads=2).relay_all() >= 199
    index = {str(r.pk): i for i, r in enumerate(rows)}
    assert [index[i] for i in recording.sent_ids] == [i for i in range(200) if i != 10]


@pytest.mark.rabbitmq
def test_a_batch_rabbitmq_stores_in_part_is_sent_once(rabbitmq_url, queue, transactional_db):
    # A queue of at most 3 messages that refuses more (x-overflow: reject-publish): the broker
    # confirms the first 3 of a batch of 5 and nacks the others.
    full_at_3 = {"x-max-length": 3, "x-overflow": "reject-publish"}
    provider = kew.connect(
        rabbitmq_url, queue_type="classic", queue_arguments=full_at_3, delivery_limit=None
    )
    try:
        rows = Channel(queue, payload=Job).send_many([Job(n) for n in range(5)])
        relay = Relay(provider, batch_size=5, queues=[queue])
        with pytest.raises(PartlyStored):
            relay.relay_batch()
        pending = OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING)
        assert sorted(pending.values_list("pk", flat=True)) == sorted(r.pk for r in rows[3:])
        assert {row.attempts for row in pending} == {0}  # the broker's state, not theirs
        assert received(provider, queue) == [0, 1, 2]  # room again: the other two go now
        assert relay.relay_all() == 2
        assert received(provider, queue) == [3, 4]  # and nothing twice
    finally:
        provider.close()


def received(provider, queue: str) -> list[int]:
    """Take and ack every message waiting in ``queue``; return their job numbers."""
    numbers = []
    with provider.receiver(queue, prefetch=10) as receiver:
        while (delivery := receiver.receive(2.0)) is not None:
            numbers.append(json.loads(delivery.payload)["n"])
            delivery.ack()
    return numbers
