"""Each limit as it stands: its values (declared and overridden), slots in use, parked messages.

Read by ``kew_status``, the admin dashboard and the metrics' database
gauges: one query, whatever the number of slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce, Now

from kew_django.limits.declared import Limit, declared_limit
from kew_django.models import LimitSetting, LimitSlot, ParkedMessage
from kew_django.workers.registry import consumers


@dataclass
class LimitView:
    """One limit: the values in force, who set them, and how full it is."""

    name: str
    limit: Limit
    overridden: bool = False  # an operator set a value in the database
    in_use: int = 0
    parked: int = 0

    def text(self, field: str) -> str:
        """Return a value for display ("-" when unset)."""
        value = getattr(self.limit, field)
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def declared_limits() -> dict[str, tuple[Limit, list[str]]]:
    """Return every registered consumer's limit by name, with the queues that use it."""
    found: dict[str, tuple[Limit, list[str]]] = {}
    for spec in consumers:
        try:
            limit = declared_limit(spec.queue, spec.limit)
        except Exception:  # noqa: BLE001 - a bad declaration is the checks' to report
            continue
        if limit is not None:
            name = limit.name or spec.queue
            found.setdefault(name, (limit, []))[1].append(spec.queue)
    return found


def read_limits(using: str | None = None) -> list[LimitView]:
    """Return the declared limits and those with a database row, in name order (one query)."""
    views = {name: LimitView(name, limit) for name, (limit, _) in declared_limits().items()}
    for row in _with_counts(LimitSetting.objects.using(using)):
        view = views.setdefault(row.name, LimitView(row.name, Limit(name=row.name)))
        values = {f: getattr(row, f) for f in ("concurrency", "per_key", "rate", "key_rate")}
        view.overridden = any(v is not None for v in values.values())
        view.limit = view.limit.over(values)
        view.in_use = row.slots_in_use  # type: ignore[attr-defined]
        view.parked = row.parked_messages  # type: ignore[attr-defined]
    return [views[name] for name in sorted(views)]


def _with_counts(rows: QuerySet[LimitSetting]) -> QuerySet[LimitSetting]:
    """Annotate each limit's row with its live slots and parked messages."""

    def count(model: Any, **where: Any) -> Coalesce:
        found = model.objects.filter(limit=OuterRef("name"), **where).order_by().values("limit")
        return Coalesce(Subquery(found.annotate(n=Count("id")).values("n")), 0)

    return rows.annotate(
        slots_in_use=count(LimitSlot, expires_at__gt=Now()),
        parked_messages=count(ParkedMessage),
    )


def format_limits(views: list[LimitView]) -> list[str]:
    """Return ``kew_status``'s lines for the limits (none when there are none)."""
    if not views:
        return []
    width = max(len("limit"), *(len(v.name) for v in views))
    head = ("concurrency", "per key", "rate/s", "key rate/s", "in use", "parked")
    lines = ["", f"{'limit':<{width}}  " + "  ".join(f"{h:>11}" for h in head)]
    for v in views:
        cells = [v.text(f) for f in ("concurrency", "per_key", "rate", "key_rate")]
        cells += [str(v.in_use), str(v.parked)]
        note = "  (set in the admin)" if v.overridden else ""
        lines.append(f"{v.name:<{width}}  " + "  ".join(f"{c:>11}" for c in cells) + note)
    return lines
