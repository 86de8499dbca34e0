"""The consumers of the imports app: run an import; then, for its outcome, e-mail and audit.

The import and the e-mail are idempotent and run outside a transaction
(``atomic=False``): the import reports progress and can be cancelled, and
commits its outcome in one short ``work.commit()``. Each outcome is
published on the ``import-outcomes`` topic, whose subscribers (the e-mail,
the audit log) react independently. The flow and its guarantee:
docs/reference-app.md#the-flow.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from django.conf import settings

from kew.schedule import RepeatAction
from kew_django import Cancelled, PermanentError, Work, consumer, subscriber
from kew_django.workers.progress import LeaseLost
from project.imports import outcomes
from project.imports.importer import (
    ImportJob,
    PermanentImportError,
    get_importer,
    import_roots,
    no_progress,
    user_roots,
)
from project.imports.messages import IMPORTS_QUEUE, ImportRequest, OutcomeNotice, import_outcomes
from project.imports.models import AuditEntry, Import
from project.imports.notifications import send_outcome_email

log = logging.getLogger(__name__)


def import_exhausted(request: ImportRequest, error: BaseException | None) -> None:
    """Record the failure outcome of an import whose retries have run out."""
    item = Import.objects.filter(pk=request.import_id).first()
    if item is None or item.finished:
        return
    reason = item.last_error or (str(error) if error else "unknown error")
    attempts = item.attempts
    plural = "s" if attempts != 1 else ""
    with contextlib.suppress(outcomes.OutcomeAlreadyRecorded):
        outcomes.record_failure(
            request.import_id, f"gave up after {attempts} attempt{plural}: {reason}"
        )


@consumer(
    IMPORTS_QUEUE,
    payload=ImportRequest,
    retry=settings.IMPORT_RETRY,
    on_exhausted=import_exhausted,
    idempotent=True,
    prefetch=1,  # imports are long: hold one at a time, leave the rest to other workers
    atomic=False,  # ... and run outside a transaction, committing the outcome in a short one
    limit=settings.IMPORT_CONCURRENCY,  # at most this many at once, cluster-wide
)
def run_import(request: ImportRequest, work: Work | None = None) -> RepeatAction | None:
    """Run the importer once; record the outcome, or ask for a retry if it may yet work.

    A transient failure is counted on the Import (committed at once) and
    answered with RETRY, so the attempt and its error show on the status
    page while the retry waits. A cancel (``Cancelled`` from the importer's
    progress report) ends the import as cancelled, with its one notice.
    """
    item = Import.objects.filter(pk=request.import_id).first()
    if item is None:
        raise PermanentError(f"import {request.import_id} does not exist")
    if item.finished:
        log.info("import %s has its outcome already (%s); skipped", item.pk, item.status)
        return None
    attempt = item.attempts + 1
    log.info("import %s attempt %d: importing %s", item.pk, attempt, item.path)
    job = ImportJob(
        import_id=str(item.pk),
        source=Path(item.path),
        roots=user_roots(item.requester.get_username()) if item.requester else import_roots(),
        options=item.options,
        attempt=attempt,
        progress=work.progress if work is not None else no_progress,
    )
    try:
        files = get_importer().run(job)
    except Cancelled:
        log.warning("import %s cancelled on request (attempt %d)", item.pk, attempt)
        with commit(work):
            finish(outcomes.record_cancelled, item, "cancelled on request", attempts=attempt)
        return None
    except PermanentImportError as error:
        log.warning("import %s failed permanently: %s", item.pk, error)
        with commit(work):
            finish(outcomes.record_failure, item, str(error), attempts=attempt)
        return None
    except LeaseLost:
        raise  # another worker runs this import now: stop, commit nothing
    except Exception as error:  # transient, or unexpected: both deserve another try
        log.warning("import %s attempt %d failed: %s", item.pk, attempt, error)
        outcomes.record_attempt(item.pk, describe(error))
        return RepeatAction.RETRY
    with commit(work):
        finish(outcomes.record_success, item, files, attempts=attempt)
    log.info("import %s succeeded: %d files", item.pk, len(files))
    return None


def commit(work: Work | None) -> contextlib.AbstractContextManager:
    """Return the final short transaction: the work's own (with the message id), or none."""
    return work.commit() if work is not None else contextlib.nullcontext()


def finish(record, item: Import, *args, **kwargs) -> None:
    """Record an outcome, tolerating one recorded meanwhile by another worker."""
    try:
        record(item.pk, *args, **kwargs)
    except outcomes.OutcomeAlreadyRecorded:
        log.info("import %s got its outcome elsewhere; this one is dropped", item.pk)


def describe(error: BaseException) -> str:
    """Return a one-line description of an importer's error."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def notify_exhausted(notice: OutcomeNotice, error: BaseException | None) -> None:
    """Log the outcome e-mail that could not be sent; its dead letter can be requeued."""
    log.error(
        "outcome e-mail of import %s not sent after every retry: %s (requeue its dead "
        "letter in the admin once the mail server is back)",
        notice.import_id,
        error,
    )


@subscriber(
    import_outcomes,
    name="email",
    retry=settings.NOTIFY_RETRY,
    on_exhausted=notify_exhausted,
    idempotent=True,
    atomic=False,  # no transaction (no SQLite write lock) while the mail server talks
)
def notify(notice: OutcomeNotice, work: Work | None = None) -> None:
    """E-mail the import's outcome once; a mail server failure raises, so it is retried.

    The e-mail goes out with no transaction open (a mail server that stalls,
    up to ``EMAIL_TIMEOUT``, holds no database lock); then ``notified_at``
    and the message id commit together. A worker that dies between the two
    sends the e-mail again, with the same Message-ID.
    """
    item = Import.objects.filter(pk=notice.import_id).first()
    if item is None:
        raise PermanentError(f"import {notice.import_id} does not exist")
    if not item.finished:
        raise PermanentError(f"import {item.pk} has no outcome to tell")
    if item.notified_at is not None:
        log.info("outcome of import %s was e-mailed already; skipped", item.pk)
        return
    send_outcome_email(item)
    with commit(work):
        outcomes.record_notified(item.pk)
    log.info("outcome of import %s (%s) e-mailed to %s", item.pk, item.status, item.email)


@subscriber(import_outcomes, name="audit", idempotent=True)
def audit(notice: OutcomeNotice) -> None:
    """Write the import's audit entry (once); its failures never delay the e-mail."""
    item = Import.objects.filter(pk=notice.import_id).first()
    if item is None:
        raise PermanentError(f"import {notice.import_id} does not exist")
    AuditEntry.objects.get_or_create(
        source=item, defaults={"status": item.status, "file_count": item.file_count}
    )
