"""A rejected row backs off between attempts; rows left pending are not overtaken."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

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
