"""What operators see and do: each job's last and next firing, pause and resume.

The admin (``kew_django.admin.periodic``) and ``kew_status`` call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models.functions import Greatest, Now
from django.utils import timezone

from kew_django.models import PeriodicJob
from kew_django.periodic_jobs.registry import PeriodicRegistry, PeriodicSpec, periodic_jobs


@dataclass
class JobStatus:
    """One job: its declaration (None if no code declares it now) and its row (None if unseen)."""

    name: str
    spec: PeriodicSpec | None
    row: PeriodicJob | None
    next_tick: datetime | None

    @property
    def timing(self) -> str:
        """Return the job's timing as declared, or why there is none."""
        if self.spec is None:
            return "not declared"
        try:
            return str(self.spec.timing)
        except Exception as error:  # noqa: BLE001 - shown, and reported by the system check
            return f"invalid: {error}"


def next_tick(spec: PeriodicSpec, row: PeriodicJob | None, now: datetime) -> datetime | None:
    """Return when ``spec`` fires next: None if paused or badly declared."""
    if row is not None and row.paused:
        return None
    start = max(now, row.done_until) if row is not None else now
    try:
        return next(spec.timing.after(start))
    except Exception:  # noqa: BLE001 - a bad declaration has no next tick
        return None


def job_statuses(
    *, registry: PeriodicRegistry = periodic_jobs, using: str | None = None
) -> list[JobStatus]:
    """Return every declared job and every stored one, by name."""
    now = timezone.now()
    rows = {row.name: row for row in PeriodicJob.objects.using(using)}
    specs = {spec.name: spec for spec in registry}
    return [
        JobStatus(
            name,
            specs.get(name),
            rows.get(name),
            next_tick(specs[name], rows.get(name), now) if name in specs else None,
        )
        for name in sorted(set(rows) | set(specs))
    ]


def pause(names: Iterable[str], *, using: str | None = None) -> int:
    """Pause the jobs called ``names`` in every process; return how many changed."""
    return PeriodicJob.objects.using(using).filter(name__in=list(names)).update(paused=True)


def resume(names: Iterable[str], *, using: str | None = None) -> int:
    """Resume the jobs called ``names``; the ticks that fell while they were paused never fire."""
    return (
        PeriodicJob.objects.using(using)
        .filter(name__in=list(names), paused=True)
        .update(paused=False, done_until=Greatest("done_until", Now()))
    )


def format_jobs(statuses: list[JobStatus]) -> list[str]:
    """Return ``kew_status``'s lines about periodic jobs (none if there are none)."""
    if not statuses:
        return []
    lines = ["", "periodic jobs:"]
    for job in statuses:
        row = job.row
        state = "paused" if row and row.paused else "active"
        last = _when(row.last_tick) if row and row.last_tick else "never"
        fired = row.fired if row else 0
        lines.append(
            f"  {job.name}  {job.timing}  {state}  last {last}  next {_when(job.next_tick)}"
            f"  fired {fired}"
        )
    return lines


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "-"
