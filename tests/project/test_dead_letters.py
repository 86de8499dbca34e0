"""An outcome e-mail that cannot be sent becomes a dead letter; requeued, it is sent once."""

from __future__ import annotations

import dataclasses
import smtplib

import pytest
from django.core import mail

from kew_django.models import DeadLetter
from kew_django.operations import requeue_dead_letters
from kew_django.providers import providers as handler
from kew_django.runner import relay_from_settings
from kew_django.workers.registry import consumers
from kew_django.workers.worker import DeliveryOutcome, Worker
from project.imports import outcomes
from project.imports.messages import OUTCOMES_QUEUE, OUTCOMES_TOPIC
from project.imports.models import Import

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def providers(settings):
    """The database provider, closed afterwards (on PostgreSQL it holds a LISTEN connection)."""
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    handler.close_all()
    yield handler
    handler.close_all()


def deliver_one(worker: Worker) -> DeliveryOutcome:
    """Relay what the outbox holds, then handle one delivery of the notices queue."""
    relay_from_settings(queues=[OUTCOMES_TOPIC, OUTCOMES_QUEUE]).relay_all()
    with worker.provider.receiver(OUTCOMES_QUEUE) as consumer:
        delivery = consumer.receive(timeout=5)
        assert delivery is not None, "no notice was delivered"
        return worker.handle(delivery)


def test_an_unsendable_outcome_is_dead_lettered_then_requeued(providers, monkeypatch):
    spec = consumers.get(OUTCOMES_QUEUE)
    worker = Worker(dataclasses.replace(spec, retry=""), providers["default"])  # no retries
    item = Import.objects.create(path="/r/x", requested_path="x", root="/r", email="a@b.org")
    outcomes.record_failure(item.pk, "it broke", attempts=1)

    def refuse(self, messages):
        raise smtplib.SMTPDataError(451, b"try again later")

    with monkeypatch.context() as patch:
        patch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
        assert deliver_one(worker) is DeliveryOutcome.DEAD
    letter = DeadLetter.objects.get()
    assert (letter.queue, letter.reason) == (OUTCOMES_QUEUE, DeadLetter.Reason.EXHAUSTED)
    assert "try again later" in letter.error
    item.refresh_from_db()
    assert item.notified_at is None and mail.outbox == []

    # The mail server is back; the operator requeues the dead letter (as the admin does).
    assert len(requeue_dead_letters(DeadLetter.objects.all()).created) == 1
    assert deliver_one(worker) is DeliveryOutcome.HANDLED
    (email,) = mail.outbox
    assert email.subject == "Import failed: x"
    item.refresh_from_db()
    assert item.notified_at is not None
    assert requeue_dead_letters(DeadLetter.objects.all()).created == []  # requeued already
