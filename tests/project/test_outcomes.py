"""The Import state machine: one outcome per import, recorded with exactly one notice."""

from __future__ import annotations

import json

import pytest

from kew_django.models import OutboxMessage
from project.imports import outcomes
from project.imports.importer import FileRecord
from project.imports.messages import OUTCOMES_TOPIC
from project.imports.models import Import

pytestmark = pytest.mark.django_db
FILES = [FileRecord("a.txt", 3, "a" * 64), FileRecord("b/c.bin", 5, "c" * 64)]


@pytest.fixture
def item() -> Import:
    return Import.objects.create(path="/r/x", requested_path="x", root="/r", email="a@b.org")


def notices() -> list[dict]:
    return [
        json.loads(bytes(m.payload)) for m in OutboxMessage.objects.filter(queue=OUTCOMES_TOPIC)
    ]


def test_success_records_files_and_one_notice(item):
    outcomes.record_success(item.pk, FILES, attempts=1)
    item.refresh_from_db()
    assert item.status == Import.Status.SUCCEEDED
    assert (item.file_count, item.total_bytes, item.attempts) == (2, 8, 1)
    assert item.finished_at is not None
    assert [f.path for f in item.files.all()] == ["a.txt", "b/c.bin"]
    assert notices() == [{"import_id": str(item.pk)}]


def test_failure_records_the_error_and_one_notice(item):
    outcomes.record_failure(item.pk, "it broke", attempts=3)
    item.refresh_from_db()
    assert (item.status, item.error, item.attempts) == (Import.Status.FAILED, "it broke", 3)
    assert notices() == [{"import_id": str(item.pk)}]


@pytest.mark.parametrize("first", ["success", "failure"])
def test_a_second_outcome_is_refused_and_sends_nothing(item, first):
    record = {
        "success": lambda: outcomes.record_success(item.pk, FILES, attempts=1),
        "failure": lambda: outcomes.record_failure(item.pk, "no"),
    }
    record[first]()
    for second in record.values():
        with pytest.raises(outcomes.OutcomeAlreadyRecorded):
            second()
    item.refresh_from_db()
    assert item.status == (Import.Status.SUCCEEDED if first == "success" else Import.Status.FAILED)
    assert item.files.count() == (2 if first == "success" else 0)
    assert len(notices()) == 1


def test_attempts_count_only_while_pending(item):
    outcomes.record_attempt(item.pk, "busy")
    outcomes.record_attempt(item.pk, "still busy")
    item.refresh_from_db()
    assert (item.attempts, item.last_error) == (2, "still busy")
    outcomes.record_success(item.pk, [], attempts=3)
    outcomes.record_attempt(item.pk, "late")
    item.refresh_from_db()
    assert (item.attempts, item.last_error) == (3, "still busy")


def test_notified_is_recorded_once_and_only_after_an_outcome(item):
    assert outcomes.record_notified(item.pk) is False
    outcomes.record_failure(item.pk, "no")
    assert outcomes.record_notified(item.pk) is True
    assert outcomes.record_notified(item.pk) is False
