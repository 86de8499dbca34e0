"""Each outcome is published once; the e-mail and the audit log react to it independently."""

from __future__ import annotations

import dataclasses

import pytest
from django.core import mail

from kew_django.models import DeadLetter
from kew_django.providers import providers as handler
from kew_django.runner import relay_from_settings
from kew_django.workers.registry import consumers
from kew_django.workers.worker import DeliveryOutcome, Worker
from project.imports import outcomes
from project.imports.importer import FileRecord
from project.imports.messages import AUDIT_QUEUE, OUTCOMES_QUEUE
from project.imports.models import AuditEntry, Import

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider(settings):
    """The database provider (on PostgreSQL it holds a LISTEN connection: closed afterwards)."""
    settings.KEW = {"PROVIDERS": {"default": {"URL": "database://"}}}
    handler.close_all()
    yield handler["default"]
    handler.close_all()


def drain(provider, queue: str, *, retry: str | None = None) -> list[DeliveryOutcome]:
    """Handle every delivery waiting in ``queue`` with its registered consumer."""
    spec = consumers.get(queue)
    if retry is not None:
        spec = dataclasses.replace(spec, retry=retry)
    worker = Worker(spec, provider)
    outcomes_seen = []
    with provider.receiver(queue) as receiver:
        while (delivery := receiver.receive(timeout=1)) is not None:
            outcomes_seen.append(worker.handle(delivery))
    return outcomes_seen


def succeeded_import() -> Import:
    item = Import.objects.create(path="/r/x", requested_path="x", root="/r", email="a@b.org")
    outcomes.record_success(item.pk, [FileRecord("a.txt", 3, "a" * 64)], attempts=1)
    return item


def test_a_success_is_mailed_once_and_audited_once(provider):
    item = succeeded_import()
    assert relay_from_settings().relay_all() == 1  # one event, two subscriptions
    assert drain(provider, OUTCOMES_QUEUE) == [DeliveryOutcome.HANDLED]
    assert drain(provider, AUDIT_QUEUE) == [DeliveryOutcome.HANDLED]
    (email,) = mail.outbox
    assert email.subject.startswith("Import succeeded")
    entry = AuditEntry.objects.get()
    assert (entry.source_id, entry.status, entry.file_count) == (item.pk, "succeeded", 1)


def test_a_failing_audit_log_does_not_touch_the_e_mail(provider, monkeypatch):
    succeeded_import()
    relay_from_settings().relay_all()

    def broken(*args, **kwargs):
        raise RuntimeError("audit database is read-only")

    with monkeypatch.context() as patch:
        patch.setattr(AuditEntry.objects, "get_or_create", broken)
        assert drain(provider, AUDIT_QUEUE, retry="") == [DeliveryOutcome.DEAD]
    assert drain(provider, OUTCOMES_QUEUE) == [DeliveryOutcome.HANDLED]
    assert len(mail.outbox) == 1
    (letter,) = DeadLetter.objects.all()
    assert letter.queue == AUDIT_QUEUE and "read-only" in letter.error
    assert not AuditEntry.objects.exists()
