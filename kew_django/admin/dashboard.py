"""The operators' dashboard: per-queue counts, relay lag and a 24-hour chart.

Every figure comes from a handful of aggregate queries (GROUP BY queue,
status; TruncHour over an indexed time range), so the page costs the same
five queries on a thousand rows or a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce, TruncHour
from django.template.response import TemplateResponse
from django.utils import timezone

from kew_django.limits.status import read_limits
from kew_django.models import DeadLetter, OutboxMessage
from kew_django.workers.registry import consumers

Status = OutboxMessage.Status
HOURS = 24


@dataclass
class QueueRow:
    """One line of the dashboard's table."""

    queue: str
    pending: int = 0
    sent_last_hour: int = 0
    failed: int = 0
    dead: int = 0
    lag: timedelta | None = None  # how long the oldest due pending message has waited

    @property
    def lag_text(self) -> str:
        return duration(self.lag)


@dataclass
class Hour:
    """Messages sent and dead-lettered in one hour of the chart."""

    start: datetime
    sent: int = 0
    dead: int = 0


@dataclass
class Summary:
    """Everything the dashboard shows, computed at ``now``."""

    now: datetime
    queues: list[QueueRow] = field(default_factory=list)
    hours: list[Hour] = field(default_factory=list)

    @property
    def lag(self) -> timedelta | None:
        """Return the relay lag over all queues: the age of the oldest due pending message."""
        lags = [row.lag for row in self.queues if row.lag is not None]
        return max(lags) if lags else None

    @property
    def lag_text(self) -> str:
        return duration(self.lag)


def duration(value: timedelta | None) -> str:
    """Return ``value`` in two units, e.g. "3 min 12 s", "2 d 0 h", "5 s"; "-" for None."""
    if value is None:
        return "-"
    seconds = max(int(value.total_seconds()), 0)
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    for (unit, size), (small, small_size) in zip(units, units[1:], strict=False):
        if seconds >= size:
            return f"{seconds // size} {unit} {seconds % size // small_size} {small}"
    return f"{seconds} s"


def summarize(now: datetime | None = None) -> Summary:
    """Compute the dashboard's figures with five aggregate queries."""
    now = now or timezone.now()
    rows: dict[str, QueueRow] = {}

    def row(queue: str) -> QueueRow:
        return rows.setdefault(queue, QueueRow(queue))

    for spec in consumers:
        row(spec.queue)
    due = Q(status=Status.PENDING) & (Q(deliver_at__isnull=True) | Q(deliver_at__lte=now))
    open_counts = (
        OutboxMessage.objects.filter(status__in=[Status.PENDING, Status.FAILED])
        .values("queue", "status")
        .annotate(n=Count("pk"), oldest=Min(Coalesce("deliver_at", "created_at"), filter=due))
        .order_by()
    )
    for item in open_counts:
        line = row(item["queue"])
        if item["status"] == Status.PENDING:
            line.pending = item["n"]
            line.lag = now - item["oldest"] if item["oldest"] else None
        else:
            line.failed = item["n"]
    for item in _sent_since(now - timedelta(hours=1)).values("queue").annotate(n=Count("pk")):
        row(item["queue"]).sent_last_hour = item["n"]
    dead = DeadLetter.objects.filter(state=DeadLetter.State.DEAD)
    for letters in dead.values("queue").annotate(n=Count("pk")).order_by():
        row(letters["queue"]).dead = letters["n"]
    return Summary(now=now, queues=sorted(rows.values(), key=lambda r: r.queue), hours=_hours(now))


def _sent_since(since: datetime):
    # Served by the (status, sent_at) index.
    return OutboxMessage.objects.filter(status=Status.SENT, sent_at__gte=since).order_by()


def _hours(now: datetime) -> list[Hour]:
    """Return the last 24 hours (the current one last) with their sent and dead counts."""
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = {current - timedelta(hours=n): Hour(current - timedelta(hours=n)) for n in range(HOURS)}
    since = min(hours)
    sent = _sent_since(since).annotate(hour=TruncHour("sent_at", tzinfo=UTC)).values("hour")
    for item in sent.annotate(n=Count("pk")):
        if item["hour"] in hours:
            hours[item["hour"]].sent = item["n"]
    # Every state, so that a letter requeued since still shows when it died;
    # state IN (...) AND last_failed_at >= since is served by (state, last_failed_at).
    dead = DeadLetter.objects.filter(
        state__in=DeadLetter.State.values, last_failed_at__gte=since
    ).order_by()
    for item in (
        dead.annotate(hour=TruncHour("last_failed_at", tzinfo=UTC))
        .values("hour")
        .annotate(n=Count("pk"))
    ):
        if item["hour"] in hours:
            hours[item["hour"]].dead = item["n"]
    return [hours[start] for start in sorted(hours)]


@dataclass(frozen=True)
class Bar:
    """One bar of the chart, in SVG user units."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


def chart(hours: list[Hour], *, width: int = 960, height: int = 180) -> dict:
    """Lay out the hourly chart: a pair of bars (sent, dead) per hour, on one scale."""
    top = max([h.sent for h in hours] + [h.dead for h in hours] + [1])
    plot = height - 20  # room for the hour labels
    slot = width / max(len(hours), 1)
    bar = slot * 0.4
    sent: list[Bar] = []
    dead: list[Bar] = []
    ticks: list[dict[str, object]] = []
    for index, hour in enumerate(hours):
        x = index * slot + slot * 0.1
        label = hour.start.strftime("%H:00")
        for series, count, offset in ((sent, hour.sent, 0.0), (dead, hour.dead, bar)):
            h = plot * count / top
            series.append(Bar(x + offset, plot - h, bar, h, count, label))
        if index % 3 == 0:
            ticks.append({"x": x + bar, "label": label})
    return {
        "width": width,
        "height": height,
        "plot": plot,
        "top": top,
        "sent": sent,
        "dead": dead,
        "ticks": ticks,
    }


def dashboard_view(request, *, admin_site):
    """Render the dashboard inside the admin (the caller checks permissions)."""
    summary = summarize()
    context = {
        **admin_site.each_context(request),
        "title": "Kew dashboard",
        "summary": summary,
        "chart": chart(summary.hours),
        "limits": read_limits(),
        "opts": OutboxMessage._meta,
        "app_label": OutboxMessage._meta.app_label,
    }
    return TemplateResponse(request, "admin/kew_django/dashboard.html", context)
