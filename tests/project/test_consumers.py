"""The consumers' handlers, called directly: outcomes, retries, and the outcome e-mail."""

from __future__ import annotations

import json
import smtplib

import pytest
from django.core import mail

from kew.schedule import RepeatAction
from kew_django import PermanentError
from kew_django.models import OutboxMessage
from kew_django.testing import work_for
from project.imports import outcomes
from project.imports.consumers import import_exhausted, notify, run_import
from project.imports.messages import (
    IMPORTS_QUEUE,
    OUTCOMES_TOPIC,
    ImportRequest,
    OutcomeNotice,
)
from project.imports.models import Import
from project.imports.notifications import outcome_message_id

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("scripted")]


@pytest.fixture
def make(import_root):
    def make(name: str) -> Import:
        folder = import_root / name
        folder.mkdir(exist_ok=True)
        (folder / "data.txt").write_text(name)
        return Import.objects.create(
            path=str(folder), requested_path=name, root=str(import_root), email="a@b.org"
        )

    return make


def run(item: Import, *, cancelled: bool = False) -> RepeatAction | None:
    work = work_for(IMPORTS_QUEUE, cancelled=cancelled)
    result = run_import(ImportRequest(import_id=str(item.pk)), work)
    item.refresh_from_db()
    return result


def notices(item: Import) -> int:
    payloads = OutboxMessage.objects.filter(queue=OUTCOMES_TOPIC).values_list("payload", flat=True)
    return sum(json.loads(bytes(p)) == {"import_id": str(item.pk)} for p in payloads)


def test_a_good_import_succeeds_with_its_files(make):
    item = make("fine")
    assert run(item) is None
    assert (item.status, item.attempts, item.file_count) == ("succeeded", 1, 1)
    assert item.files.get().path == "data.txt"
    assert notices(item) == 1


def test_a_cancelled_import_stops_at_its_first_progress_report_with_one_notice(make):
    item = make("fine")
    assert run(item, cancelled=True) is None
    assert (item.status, item.error, item.file_count) == ("cancelled", "cancelled on request", 0)
    assert not item.files.exists()
    assert notices(item) == 1


def test_an_import_reports_its_progress_in_bytes_and_files(make):
    item = make("fine")
    work = work_for(IMPORTS_QUEUE)
    run_import(ImportRequest(import_id=str(item.pk)), work)
    done, total, note = work.heartbeat._progress
    assert done == total == 4 and note == "file 1 of 1: data.txt"


def test_a_transient_failure_asks_for_a_retry_and_counts_the_attempt(make):
    item = make("transient-2")
    assert run(item) is RepeatAction.RETRY
    assert (item.status, item.attempts) == ("pending", 1)
    assert "TransientImportError" in item.last_error
    assert run(item) is RepeatAction.RETRY
    assert run(item) is None
    assert (item.status, item.attempts) == ("succeeded", 3)
    assert notices(item) == 1


def test_a_permanent_failure_ends_the_import_at_once(make):
    item = make("permanent")
    assert run(item) is None
    assert (item.status, item.attempts) == ("failed", 1)
    assert "permanently" in item.error
    assert notices(item) == 1


def test_a_redelivered_request_has_no_second_outcome(make):
    item = make("fine")
    run(item)
    finished_at = item.finished_at
    assert run(item) is None
    assert (item.attempts, item.finished_at) == (1, finished_at)
    assert notices(item) == 1


def test_exhausted_retries_fail_the_import_with_the_last_error(make):
    item = make("transient-9")
    for _ in range(3):
        run(item)
    import_exhausted(ImportRequest(import_id=str(item.pk)), None)
    item.refresh_from_db()
    assert item.status == "failed"
    assert item.error.startswith("gave up after 3 attempts: TransientImportError")
    import_exhausted(ImportRequest(import_id=str(item.pk)), None)  # once more: no effect
    assert notices(item) == 1


def test_an_unknown_import_is_a_permanent_error():
    with pytest.raises(PermanentError):
        run_import(
            ImportRequest(import_id="6f1c2a43-3f43-4f5e-a2b0-000000000000"),
            work_for(IMPORTS_QUEUE),
        )
    with pytest.raises(PermanentError):
        notify(OutcomeNotice(import_id="6f1c2a43-3f43-4f5e-a2b0-000000000000"))


def test_the_outcome_is_emailed_once_with_a_stable_message_id(make, settings):
    settings.IMPORT_SITE_URL = "https://kew.example.org/"
    item = make("fine")
    run(item)
    notify(OutcomeNotice(import_id=str(item.pk)))
    notify(OutcomeNotice(import_id=str(item.pk)))  # redelivered: already notified
    (email,) = mail.outbox
    assert email.to == ["a@b.org"]
    assert email.subject == "Import succeeded: fine"
    assert email.extra_headers["Message-ID"] == f"<import-{item.pk}.outcome@localhost>"
    assert email.message()["Message-ID"] == outcome_message_id(item)
    assert f"https://kew.example.org/imports/{item.pk}/" in email.body
    assert "data.txt" in email.body
    item.refresh_from_db()
    assert item.notified_at is not None


def test_a_failure_email_says_why(make):
    item = make("permanent")
    run(item)
    notify(OutcomeNotice(import_id=str(item.pk)))
    (email,) = mail.outbox
    assert email.subject == "Import failed: permanent"
    assert "scripted to fail permanently" in email.body


def test_a_mail_server_failure_raises_so_the_notice_is_retried(make, monkeypatch):
    item = make("fine")
    run(item)

    def refuse(self, messages):
        raise smtplib.SMTPDataError(451, b"try again later")

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    with pytest.raises(smtplib.SMTPDataError):
        notify(OutcomeNotice(import_id=str(item.pk)))
    item.refresh_from_db()
    assert item.notified_at is None


def test_a_notice_before_the_outcome_is_a_permanent_error(make):
    item = make("fine")
    with pytest.raises(PermanentError):
        notify(OutcomeNotice(import_id=str(item.pk)))
    outcomes.record_failure(item.pk, "x")
    notify(OutcomeNotice(import_id=str(item.pk)))
    assert len(mail.outbox) == 1
