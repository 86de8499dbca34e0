"""Clear the "in progress" rows of workers that died: nobody beats them any more.

A worker killed outright (SIGKILL, out of memory, a lost host) never
deletes its ``InProgress`` rows. A row with no heartbeat for
``STALE_BEATS`` beats, by the database's clock, belongs to such a worker:
each ``kew_consume`` and ``kew_run`` deletes them every few beats
(``kew_django.runner``), and the admin's cancel and the status pages treat
them as stopped, not running. A live worker whose row was cleared (its
beats failed for a while) writes it again at its next beat. The message
itself comes back through the provider (its lease ends, or the broker
sees the connection drop), not through this.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import router

from kew_django.conf import section
from kew_django.models import InProgress

log = logging.getLogger(__name__)
STALE_BEATS = 3


def stale_after() -> timedelta:
    """Return how long a row may go without a heartbeat before its worker counts as stopped."""
    return timedelta(seconds=STALE_BEATS * float(section("CONSUMERS")["HEARTBEAT"]))


def sweep(using: str | None = None) -> int:
    """Delete the rows of stopped workers; return how many (one read when there are none)."""
    stale = InProgress.objects.using(using or router.db_for_write(InProgress)).stale(stale_after())
    if not stale.exists():  # spares SQLite a write lock when there is nothing to clear
        return 0
    count, _ = stale.delete()
    if count:
        log.warning("kew: cleared %d message(s) in progress of stopped workers", count)
    return count


def stopped_at(row: InProgress) -> datetime | None:
    """Return the last heartbeat of ``row``'s worker if it stopped since; None if it runs."""
    rows = InProgress.objects.using(row._state.db or router.db_for_read(InProgress))
    return row.heartbeat_at if rows.stale(stale_after()).filter(pk=row.pk).exists() else None
