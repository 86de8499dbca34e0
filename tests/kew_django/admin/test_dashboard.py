"""The dashboard: per-queue figures, relay lag, the 24-hour chart, and its query budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from kew_django.admin.dashboard import chart, duration, summarize
from kew_django.models import DeadLetter, OutboxMessage

from .conftest import QUEUE

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status
NOW = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
DASHBOARD = reverse("admin:kew_django_dashboard")


def outbox(queue: str, status: str, *, created: timedelta, sent: timedelta | None = None, **kw):
    return OutboxMessage.objects.create(
        queue=queue,
        payload=b"{}",
        status=status,
        created_at=NOW - created,
        sent_at=NOW - sent if sent is not None else None,
        **kw,
    )


def dead(queue: str, *, ago: timedelta, state: str = DeadLetter.State.DEAD):
    return DeadLetter.objects.create(
        queue=queue, payload=b"{}", reason="exhausted", state=state, last_failed_at=NOW - ago
    )


@pytest.fixture
def traffic(registry, handled):
    """Rows on two queues, plus the registered (idle) consumer queue."""
    minutes = timedelta(minutes=1)
    outbox("mail", Status.PENDING, created=5 * minutes)
    outbox("mail", Status.PENDING, created=90 * minutes)
    outbox("mail", Status.PENDING, created=300 * minutes, deliver_at=NOW + minutes)  # not due
    outbox("mail", Status.SENT, created=40 * minutes, sent=30 * minutes)
    outbox("mail", Status.SENT, created=40 * minutes, sent=31 * minutes)
    outbox("mail", Status.SENT, created=200 * minutes, sent=150 * minutes)  # earlier hour
    outbox("mail", Status.SENT, created=3000 * minutes, sent=2000 * minutes)  # a day ago
    outbox("mail", Status.FAILED, created=60 * minutes)
    outbox("reports", Status.DISCARDED, created=minutes)
    outbox("reports", Status.SENT, created=2 * minutes, sent=minutes)
    dead("reports", ago=10 * minutes)
    dead("reports", ago=20 * minutes, state=DeadLetter.State.REQUEUED)
    dead("reports", ago=3 * 60 * minutes)


def test_figures_per_queue(traffic):
    summary = summarize(NOW)
    rows = {row.queue: row for row in summary.queues}
    assert list(rows) == ["mail", "reports", QUEUE]
    mail, reports, idle = rows["mail"], rows["reports"], rows[QUEUE]
    assert (mail.pending, mail.sent_last_hour, mail.failed, mail.dead) == (3, 2, 1, 0)
    assert mail.lag == timedelta(minutes=90)  # the scheduled row is not late
    assert (reports.pending, reports.sent_last_hour, reports.failed, reports.dead) == (0, 1, 0, 2)
    assert reports.lag is None
    assert (idle.pending, idle.sent_last_hour, idle.dead, idle.lag) == (0, 0, 0, None)
    assert summary.lag == timedelta(minutes=90)


def test_the_last_24_hours_per_hour(traffic):
    hours = summarize(NOW).hours
    assert len(hours) == 24
    assert hours[-1].start == datetime(2026, 3, 4, 12, tzinfo=UTC)
    assert hours[0].start == datetime(2026, 3, 3, 13, tzinfo=UTC)
    by_hour = {h.start.hour: (h.sent, h.dead) for h in hours if h.sent or h.dead}
    # sent 12:29 (reports), 12:00 and 11:59 (mail), 10:00; dead 12:20, 12:10 (requeued since), 9:30
    assert by_hour == {12: (2, 2), 11: (1, 0), 10: (1, 0), 9: (0, 1)}


def test_the_chart_scales_bars_to_the_busiest_hour(traffic):
    layout = chart(summarize(NOW).hours, width=240, height=120)
    assert layout["top"] == 2
    tallest = [bar for bar in layout["sent"] if bar.count == 2]
    assert tallest[0].height == layout["plot"] and tallest[0].y == 0
    assert all(bar.height == 0 for bar in layout["dead"] if bar.count == 0)
    assert len(layout["sent"]) == len(layout["dead"]) == 24


def test_the_page_shows_the_table_lag_and_svg_chart(admin_client, registry, handled):
    now = timezone.now()
    OutboxMessage.objects.create(
        queue="mail", payload=b"{}", created_at=now - timedelta(seconds=185)
    )
    DeadLetter.objects.create(queue=QUEUE, payload=b"{}", reason="failed", last_failed_at=now)
    content = admin_client.get(DASHBOARD).content.decode()
    assert '<strong id="kew-lag-value">3 min 5 s</strong>' in content
    assert '<tr data-queue="mail">' in content
    assert '<svg id="kew-chart"' in content and "<rect" in content
    assert "<script" not in content.split('<div id="content-main">')[1].split("</svg>")[0]
    dead_link = f"{reverse('admin:kew_django_deadletter_changelist')}?queue={QUEUE}"
    assert dead_link in content


def test_the_query_count_does_not_grow_with_rows_or_queues(
    admin_client, registry, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as few:
        summarize(NOW)
    for n in range(40):
        outbox(f"q{n}", Status.PENDING, created=timedelta(minutes=n))
        outbox(f"q{n}", Status.SENT, created=timedelta(minutes=n), sent=timedelta(minutes=n))
        outbox(f"q{n}", Status.FAILED, created=timedelta(minutes=n))
        dead(f"q{n}", ago=timedelta(hours=n % 30))
    with CaptureQueriesContext(connection) as many:
        summary = summarize(NOW)
    assert len(summary.queues) == 40
    assert len(few.captured_queries) == len(many.captured_queries) == 5
    with django_assert_max_num_queries(10):  # five, plus session, user and messages
        assert admin_client.get(DASHBOARD).status_code == 200


def test_the_queries_are_aggregates():
    with CaptureQueriesContext(connection) as queries:
        summarize(NOW)
    for query in queries.captured_queries:
        assert "GROUP BY" in query["sql"] or "COUNT(" in query["sql"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (65, "1 min 5 s"), (3600, "1 h 0 min"), (90061, "1 d 1 h")],
)
def test_durations_read_well(seconds, text):
    assert duration(timedelta(seconds=seconds)) == text
