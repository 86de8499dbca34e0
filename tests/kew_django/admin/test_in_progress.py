"""The "in progress" screen: a run whose worker stopped is not running, and a cancel says so."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from kew_django.models import InProgress


def test_a_cancel_of_a_run_whose_worker_stopped_answers_not_running_and_clears_it(operator):
    client = operator("view_inprogress", "cancel_inprogress")
    now = timezone.now()
    dead = InProgress.objects.create(
        queue="q", message_id="dead", worker="gone:1/t", heartbeat_at=now - timedelta(hours=1)
    )
    live = InProgress.objects.create(
        queue="q", message_id="live", worker="here:2/t", heartbeat_at=now
    )
    url = reverse("admin:kew_django_inprogress_changelist")
    response = client.post(
        url, {"action": "cancel", "_selected_action": [dead.pk, live.pk], "post": "yes"}
    )
    assert response.status_code == 302, response.content[:500]
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("dead (attempt 1): not running: its worker stopped at" in t for t in texts), texts
    assert not InProgress.objects.filter(pk=dead.pk).exists()
    live.refresh_from_db()
    assert live.cancel_requested_at is not None


def test_a_cancel_of_only_stopped_runs_asks_nothing_to_stop(operator):
    client = operator("view_inprogress", "cancel_inprogress")
    dead = InProgress.objects.create(
        queue="q", message_id="dead", heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    url = reverse("admin:kew_django_inprogress_changelist")
    response = client.post(url, {"action": "cancel", "_selected_action": [dead.pk]})
    assert response.status_code == 302
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert len(texts) == 1 and "not running: its worker stopped at" in texts[0], texts
    assert not InProgress.objects.exists()
