"""manage.py kew_status, the process records it reads, and the web view of the gauges."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.utils import timezone

from kew_django import Channel
from kew_django.models import DeadLetter, KewProcess, OutboxMessage, QueuedMessage
from kew_django.observability.processes import ProcessRecord
from tests.kew_django.conftest import Job


def status_lines() -> list[str]:
    out = StringIO()
    call_command("kew_status", stdout=out)
    return out.getvalue().splitlines()


def section(lines: list[str], header: str) -> list[str]:
    """Return the lines under ``header``, up to the blank line before the next section."""
    rest = lines[lines.index(header) + 1 :]
    return rest[: rest.index("")] if "" in rest else rest


def test_kew_status_prints_backlog_oldest_in_progress_dead_letters_and_workers(
    db, outbox_sends, queue
):  # the backlog and oldest-pending columns count outbox rows
    Channel(queue, payload=Job).send_many([Job(1), Job(2), Job(3)])
    an_hour_and_a_half_ago = timezone.now() - timedelta(minutes=90)
    OutboxMessage.objects.filter(queue=queue).update(created_at=an_hour_and_a_half_ago)
    DeadLetter.objects.create(queue=queue, payload=b"{}", reason="exhausted")
    beat = ProcessRecord(kind="consume", queues=[queue], in_progress=lambda: {queue: 2})
    beat.beat()
    KewProcess.objects.create(
        name="gone:1:x", kind="relay", host="gone", pid=1, seen_at=timezone.now() - timedelta(1)
    )
    lines = status_lines()
    assert lines[0].split() == ["queue", "backlog", "oldest", "pending", "queued", "in"] + [
        "progress",
        "dead",
        "letters",
        "failed",
    ]
    (row,) = [line for line in lines if line.startswith(queue)]
    assert row.split() == [queue, "3", "90.0m", "0", "2", "1", "0"]
    workers = section(lines, "processes seen in the last 2.0m:")
    assert len(workers) == 1 and beat.name in workers[0] and f"in progress: {queue} 2" in workers[0]


def test_kew_status_counts_direct_sends_to_the_database_provider_as_queued(db, queue):
    # The default: rows written straight into the queue table, none in the outbox.
    Channel(queue, payload=Job).send_many([Job(1), Job(2), Job(3)])
    assert not OutboxMessage.objects.filter(queue=queue).exists()
    first = QueuedMessage.objects.filter(queue=queue).order_by("pk")[:1]
    leased = QueuedMessage.objects.filter(pk__in=first.values("pk"))
    assert leased.update(leased_until=timezone.now() + timedelta(minutes=1)) == 1
    (row,) = [line for line in status_lines() if line.startswith(queue)]
    assert row.split() == [queue, "0", "-", "3", "1", "0", "0"]


def test_kew_status_with_nothing_to_show(db):
    lines = status_lines()
    assert "(no queue has messages, dead letters or workers)" in lines
    assert section(lines, "processes seen in the last 2.0m:") == ["  none"]


def test_kew_status_refuses_a_bad_window(db):
    with pytest.raises(CommandError, match="--recent must be a positive number"):
        call_command("kew_status", recent=0)


def test_a_process_record_comes_and_goes(transactional_db):
    beat = ProcessRecord(kind="relay", queues=[], interval=0.05).start()
    try:
        import time

        deadline = time.monotonic() + 10
        while not KewProcess.objects.filter(name=beat.name).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        beat.close()
    assert not KewProcess.objects.filter(name=beat.name).exists()


def test_the_metrics_view_serves_staff_and_the_token_only(
    db, outbox_sends, queue, django_user_model
):  # read back through the outbox's backlog gauge
    Channel(queue, payload=Job).send(Job(1))
    client = Client()
    assert client.get("/kew/metrics").status_code == 403
    with override_settings(KEW={"OBSERVABILITY": {"TOKEN": "s3cret"}}):
        assert client.get("/kew/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        answer = client.get("/kew/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
        assert answer.status_code == 200
        text = answer.content.decode()
        assert f'kew_outbox_backlog_messages{{messaging_destination_name="{queue}"}} 1.0' in text
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))
    assert client.get("/kew/metrics").status_code == 200
    assert client.post("/kew/metrics").status_code == 405
