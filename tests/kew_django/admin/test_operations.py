"""The operator operations as plain functions, without the admin."""

from __future__ import annotations

import pytest
from django.db.models import QuerySet

from kew_django import operations
from kew_django.models import DeadLetter, OutboxMessage

from .conftest import QUEUE

pytestmark = pytest.mark.django_db

Status, State = OutboxMessage.Status, DeadLetter.State


def test_requeue_creates_an_outbox_row_and_marks_the_letter_in_one_go(dead_letter):
    letter = dead_letter(
        payload=b'{"order_id":7,"customer":"Grace"}',
        content_type="application/vnd.orders+json",
        headers={"kew-delivery-count": "4", "kew-first-failed-at": "2026-01-01", "trace": "t-1"},
    )

    outcome = operations.requeue_dead_letters(DeadLetter.objects.all())

    (message,) = OutboxMessage.objects.all()
    assert (message.queue, bytes(message.payload), message.content_type) == (
        QUEUE,
        b'{"order_id":7,"customer":"Grace"}',
        "application/vnd.orders+json",
    )
    assert message.headers == {"trace": "t-1"}  # the delivery count starts again
    assert message.requeue_of == letter.message_id
    assert message.status == Status.PENDING and message.attempts == 0
    letter.refresh_from_db()
    assert letter.state == State.REQUEUED
    assert letter.requeued_as == str(message.pk)
    assert (outcome.changed, outcome.created, outcome.skipped) == ([letter], [message], 0)


def test_requeue_acts_on_dead_letters_only(dead_letter):
    dead_letter()
    dead_letter(state=State.REQUEUED, requeued_as="earlier")
    dead_letter(state=State.DISCARDED)

    outcome = operations.requeue_dead_letters(DeadLetter.objects.all())

    assert (len(outcome.changed), outcome.skipped) == (1, 2)
    assert OutboxMessage.objects.count() == 1
    assert DeadLetter.objects.get(requeued_as="earlier").state == State.REQUEUED


def test_requeue_twice_requeues_once(dead_letter):
    letter = dead_letter()
    operations.requeue_dead_letters([letter])  # a stale object: still says DEAD
    outcome = operations.requeue_dead_letters([letter])
    assert (outcome.changed, outcome.skipped) == ([], 1)
    assert OutboxMessage.objects.count() == 1


def test_requeue_writes_nothing_if_marking_the_letter_fails(dead_letter, monkeypatch):
    dead_letter()

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(QuerySet, "bulk_update", fail)
    with pytest.raises(RuntimeError):
        operations.requeue_dead_letters(DeadLetter.objects.all())
    assert OutboxMessage.objects.count() == 0
    assert DeadLetter.objects.get().state == State.DEAD


def test_requeue_one_with_a_new_payload(dead_letter):
    letter = dead_letter(payload=b"\xff not json", content_type="application/octet-stream")
    message = operations.requeue_dead_letter(
        letter, payload=b'{"order_id":1,"customer":"Ada"}', content_type="application/json"
    )
    assert bytes(message.payload) == b'{"order_id":1,"customer":"Ada"}'
    assert message.content_type == "application/json"
    assert letter.state == State.REQUEUED and letter.requeued_as == str(message.pk)
    assert bytes(DeadLetter.objects.get().payload) == b"\xff not json"  # kept as it was


def test_requeue_one_refuses_a_letter_that_is_not_dead(dead_letter):
    letter = dead_letter(state=State.DISCARDED)
    with pytest.raises(operations.NotActionable):
        operations.requeue_dead_letter(letter, payload=b"{}")
    assert OutboxMessage.objects.count() == 0


def test_discard_dead_letters_keeps_them(dead_letter):
    dead_letter()
    dead_letter(state=State.REQUEUED)
    outcome = operations.discard_dead_letters(DeadLetter.objects.all())
    assert (len(outcome.changed), outcome.skipped) == (1, 1)
    assert sorted(DeadLetter.objects.values_list("state", flat=True)) == ["discarded", "requeued"]


def test_retry_makes_failed_messages_pending_and_due_now(outbox_message):
    from django.utils import timezone

    failed = outbox_message(deliver_at=timezone.now() + timezone.timedelta(days=1))
    outbox_message(status=Status.SENT)
    outbox_message(status=Status.PENDING, attempts=2)

    outcome = operations.retry_outbox_messages(OutboxMessage.objects.all())

    assert (outcome.changed, outcome.skipped) == ([failed], 2)
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.deliver_at) == (Status.PENDING, 0, None)
    assert failed.last_error == "broker refused: too large"  # what went wrong, still shown
    assert OutboxMessage.objects.get(attempts=2).status == Status.PENDING


def test_discard_outbox_messages_leaves_sent_ones(outbox_message):
    outbox_message()
    outbox_message(status=Status.PENDING)
    outbox_message(status=Status.SENT)
    outcome = operations.discard_outbox_messages(OutboxMessage.objects.all())
    assert (len(outcome.changed), outcome.skipped) == (2, 1)
    assert sorted(OutboxMessage.objects.values_list("status", flat=True)) == [
        "discarded",
        "discarded",
        "sent",
    ]


def test_preview_counts_per_queue_in_one_query(dead_letter, django_assert_num_queries):
    dead_letter()
    dead_letter()
    dead_letter(queue="mail")
    dead_letter(queue="mail", state=State.REQUEUED)
    dead_letter(queue="reports", state=State.DISCARDED)

    with django_assert_num_queries(1):
        preview = operations.preview(DeadLetter.objects.all(), operations.DEAD)

    assert preview == operations.Preview(count=3, skipped=2, queues={"mail": 1, QUEUE: 2})
