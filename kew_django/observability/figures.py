"""Per-queue figures read from the database: backlog, oldest pending, in progress, dead letters.

Read by the metrics' database gauges (at each scrape, on the HTTP
server's thread), by ``manage.py kew_status`` and by the web view. Five
grouped queries, each on an index or a small table. The caller closes
the connection of its thread if it needs to (``close_db_connections``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Min
from django.utils import timezone

from kew_django.models import DeadLetter, OutboxMessage, QueuedMessage


@dataclass
class QueueFigures:
    """What the database says about one queue."""

    queue: str
    backlog: int = 0  # pending outbox rows
    oldest_pending: float | None = None  # age in seconds of the oldest pending row
    failed: int = 0  # outbox rows the provider kept rejecting (FAILED)
    dead_letters: int = 0  # dead letters not requeued nor discarded
    depth: int = 0  # database provider: rows waiting in the queue table
    in_progress: int = 0  # database provider: rows leased by a consumer now


def queue_figures(using: str | None = None) -> dict[str, QueueFigures]:
    """Return the figures of every queue that has any, by queue name."""
    now = timezone.now()
    found: dict[str, QueueFigures] = {}

    def of(queue: str) -> QueueFigures:
        return found.setdefault(queue, QueueFigures(queue))

    outbox = OutboxMessage.objects.using(using)
    pending = outbox.filter(status=OutboxMessage.Status.PENDING).values("queue")
    for row in pending.annotate(n=Count("id"), oldest=Min("created_at")).order_by():
        figures = of(row["queue"])
        figures.backlog = row["n"]
        figures.oldest_pending = max((now - row["oldest"]).total_seconds(), 0.0)
    failed = outbox.filter(status=OutboxMessage.Status.FAILED).values("queue")
    for counted in failed.annotate(n=Count("id")).order_by():
        of(counted["queue"]).failed = counted["n"]
    dead = DeadLetter.objects.using(using).filter(state=DeadLetter.State.DEAD).values("queue")
    for counted in dead.annotate(n=Count("id")).order_by():
        of(counted["queue"]).dead_letters = counted["n"]
    queued = QueuedMessage.objects.using(using).values("queue")
    for counted in queued.annotate(n=Count("id")).order_by():
        of(counted["queue"]).depth = counted["n"]
    for counted in queued.filter(leased_until__gt=now).annotate(n=Count("id")).order_by():
        of(counted["queue"]).in_progress = counted["n"]
    return dict(sorted(found.items()))
