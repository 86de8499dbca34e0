"""An import's run as kew_django's worker reports it: running since, progress, a cancel.

The consumer runs outside any transaction and reports progress through
``Work.progress``; the worker's heartbeat writes it, with the lease
renewal, to the ``InProgress`` row of the import's message every few
seconds. The status page reads that row; a cancel sets its flag, and the
importer stops at its next progress report. A row whose worker stopped
beating (the worker died) is not a running import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from kew_django.models import InProgress
from kew_django.workers.sweep import stale_after
from project.imports import outcomes
from project.imports.messages import IMPORTS_QUEUE
from project.imports.models import Import


@dataclass(frozen=True)
class RunState:
    """What the status page shows of an import a worker is running."""

    running_since: datetime | None
    heartbeat_at: datetime | None
    attempt: int
    done: int | None
    total: int | None
    note: str
    cancel_requested: bool

    status = "running"

    @property
    def percent(self) -> float | None:
        """Return how far the import got, 0-100, when the total is known."""
        if self.done is None or not self.total:
            return None
        return round(min(100.0, 100.0 * self.done / self.total), 1)

    def as_json(self) -> dict[str, Any]:
        """Return the status page's JSON fields of the run."""
        return {
            "running_since": self.running_since,
            "heartbeat_at": self.heartbeat_at,
            "run_attempt": self.attempt,
            "progress": {
                "done": self.done,
                "total": self.total,
                "percent": self.percent,
                "note": self.note or None,
            },
            "cancel_requested": self.cancel_requested,
        }


def _rows(item: Import):
    return InProgress.objects.filter(queue=IMPORTS_QUEUE, message_id=item.message_id)


def _row(item: Import) -> InProgress | None:
    """Return the row of the import's run, unless no run or its worker stopped (a dead run)."""
    if item.finished or not item.message_id:
        return None
    return _rows(item).running(stale_after()).first()


def running_state(item: Import) -> RunState | None:
    """Return the state of the import's run, or None if no worker runs it now."""
    row = _row(item)
    if row is None:
        return None
    return RunState(
        running_since=row.started_at,
        heartbeat_at=row.heartbeat_at,
        attempt=row.attempt,
        done=row.done,
        total=row.total,
        note=row.note,
        cancel_requested=row.cancel_requested_at is not None,
    )


def cancel(item: Import, *, by: str) -> str:
    """Ask the import to stop; return its status now: ``running`` (stops soon) or ``cancelled``.

    A running import is flagged (it stops at its next progress report and
    records its cancelled outcome itself); one that waits for a worker is
    given its cancelled outcome at once (the worker then skips it). Raises
    ``outcomes.OutcomeAlreadyRecorded`` if it has an outcome already.
    """
    if item.finished:
        raise outcomes.OutcomeAlreadyRecorded(f"import {item.pk} has its outcome already")
    row = _row(item)
    if row is not None:
        InProgress.objects.filter(pk=row.pk, cancel_requested_at__isnull=True).update(
            cancel_requested_at=timezone.now(), cancel_requested_by=by[:150]
        )
        return "running"
    stopped = _rows(item).stale(stale_after()).first()
    reason = (
        f"cancelled while waiting to run again (its worker stopped at {stopped.heartbeat_at:%X})"
        if stopped is not None and stopped.heartbeat_at is not None
        else "cancelled before it started"
    )
    outcomes.record_cancelled(str(item.pk), reason)
    return Import.Status.CANCELLED
