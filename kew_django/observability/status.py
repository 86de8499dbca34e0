"""What ``manage.py kew_status`` prints: per queue figures, then the processes seen recently."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from kew_django.models import KewProcess
from kew_django.observability.figures import QueueFigures, queue_figures


@dataclass
class Status:
    """The queues' figures and the Kew processes seen within ``recent``."""

    queues: dict[str, QueueFigures]
    processes: list[KewProcess]
    now: datetime = field(default_factory=timezone.now)


def read_status(*, recent: timedelta = timedelta(minutes=2), using: str | None = None) -> Status:
    """Read the status; "in progress" is the larger of leased rows and the processes' own counts."""
    now = timezone.now()
    queues = queue_figures(using)
    processes = list(
        KewProcess.objects.using(using).filter(seen_at__gte=now - recent).order_by("kind", "name")
    )
    for process in processes:
        for queue in process.queues or []:
            queues.setdefault(queue, QueueFigures(queue))
    held: dict[str, int] = {}
    for process in processes:
        for queue, count in (process.in_progress or {}).items():
            held[queue] = held.get(queue, 0) + int(count)
    for queue, count in held.items():
        figures = queues.setdefault(queue, QueueFigures(queue))
        figures.in_progress = max(figures.in_progress, count)
    return Status(dict(sorted(queues.items())), processes, now)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def format_status(status: Status, *, recent: timedelta) -> list[str]:
    """Return the lines to print."""
    width = max([len("queue"), *(len(q) for q in status.queues)])
    head = ("backlog", "oldest pending", "queued", "in progress", "dead letters", "failed")
    lines = [f"{'queue':<{width}}  " + "  ".join(f"{h:>14}" for h in head)]
    for queue, f in status.queues.items():
        age = _age(f.oldest_pending)
        cells = (f.backlog, age, f.depth, f.in_progress, f.dead_letters, f.failed)
        lines.append(f"{queue:<{width}}  " + "  ".join(f"{c!s:>14}" for c in cells))
    if not status.queues:
        lines.append("(no queue has messages, dead letters or workers)")
    lines.append("")
    lines.append(f"processes seen in the last {_age(recent.total_seconds())}:")
    for p in status.processes:
        seen = _age((status.now - p.seen_at).total_seconds())
        queues = ", ".join(p.queues) or ("all queues" if p.kind == "relay" else "-")
        busy = ", ".join(f"{q} {n}" for q, n in (p.in_progress or {}).items())
        lines.append(
            f"  {p.kind:<8} {p.name}  queues: {queues}  seen {seen} ago"
            + (f"  in progress: {busy}" if busy else "")
        )
    if not status.processes:
        lines.append("  none")
    return lines
