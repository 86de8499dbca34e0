"""An import whose worker died: its stale "in progress" row is not a run, and a cancel says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from kew_django.models import InProgress
from project.imports import progress
from project.imports.messages import IMPORTS_QUEUE
from project.imports.models import Import

pytestmark = pytest.mark.django_db


def pending_with_row(heartbeat_age: timedelta) -> Import:
    item = Import.objects.create(path="/x", requested_path="x", root="/", message_id="m-1")
    InProgress.objects.create(
        queue=IMPORTS_QUEUE,
        message_id="m-1",
        worker="gone:1/t",
        started_at=timezone.now() - heartbeat_age,
        heartbeat_at=timezone.now() - heartbeat_age,
    )
    return item


def test_a_live_run_is_running_and_a_cancel_asks_it_to_stop():
    item = pending_with_row(timedelta(seconds=0))
    assert progress.running_state(item) is not None
    assert progress.cancel(item, by="ada") == "running"
    assert InProgress.objects.get().cancel_requested_at is not None


def test_a_dead_run_is_not_running_and_a_cancel_says_its_worker_stopped():
    item = pending_with_row(timedelta(minutes=5))
    assert progress.running_state(item) is None
    assert progress.cancel(item, by="ada") == Import.Status.CANCELLED
    item.refresh_from_db()
    assert item.status == "cancelled"
    assert item.error.startswith("cancelled while waiting to run again (its worker stopped at ")
    assert InProgress.objects.get().cancel_requested_at is None  # nothing asked of a dead run
