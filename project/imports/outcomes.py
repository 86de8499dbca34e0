"""The Import state machine: pending -> succeeded | failed | cancelled, once, with one notice.

Every transition is a conditional UPDATE that matches only a pending row,
so two processes racing to record an outcome cannot both win: the loser
gets ``OutcomeAlreadyRecorded``. The outcome and the message that will
e-mail it are written in one transaction: both or neither.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from project.imports.importer import FileRecord
from project.imports.messages import OutcomeNotice, import_outcomes
from project.imports.models import Import, ImportedFile

PENDING = Import.Status.PENDING


class OutcomeAlreadyRecorded(Exception):
    """The import has its outcome already; a second one is refused."""


def record_attempt(import_id: str, error: str = "") -> None:
    """Count one more run of the importer (and its error, if it failed)."""
    Import.objects.filter(pk=import_id, status=PENDING).update(
        attempts=F("attempts") + 1,
        last_error=error,
        started_at=timezone.now(),
    )


def record_success(import_id: str, files: Sequence[FileRecord], *, attempts: int) -> None:
    """Record that the import succeeded with ``files``, and send its notice."""
    with transaction.atomic():
        _finish(
            import_id,
            status=Import.Status.SUCCEEDED,
            attempts=attempts,
            file_count=len(files),
            total_bytes=sum(f.size for f in files),
        )
        ImportedFile.objects.bulk_create(
            ImportedFile(source_id=import_id, path=f.path, size=f.size, sha256=f.sha256)
            for f in files
        )


def record_failure(import_id: str, error: str, *, attempts: int | None = None) -> None:
    """Record that the import failed because of ``error``, and send its notice."""
    with transaction.atomic():
        fields = {"status": Import.Status.FAILED, "error": error}
        if attempts is not None:
            fields["attempts"] = attempts
        _finish(import_id, **fields)


def record_cancelled(import_id: str, note: str = "", *, attempts: int | None = None) -> None:
    """Record that the import was cancelled (by its requester or an operator); send its notice."""
    with transaction.atomic():
        fields: dict = {"status": Import.Status.CANCELLED, "error": note or "cancelled on request"}
        if attempts is not None:
            fields["attempts"] = attempts
        _finish(import_id, **fields)


def _finish(import_id: str, **fields) -> None:
    changed = Import.objects.filter(pk=import_id, status=PENDING).update(
        finished_at=timezone.now(), **fields
    )
    if not changed:
        raise OutcomeAlreadyRecorded(f"import {import_id} has its outcome already")
    import_outcomes.publish(OutcomeNotice(import_id=str(import_id)))


def record_notified(import_id: str) -> bool:
    """Record that the outcome e-mail went out; False if it had been recorded before."""
    return bool(
        Import.objects.filter(pk=import_id, notified_at__isnull=True)
        .exclude(status=PENDING)
        .update(notified_at=timezone.now())
    )
