"""Payloads and URLs that once made the admin answer 500: a clear form error or a 4xx instead."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from kew_django.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = '{"order_id": ' + "9" * 5000 + ', "customer": "Ada"}'


def edit_url(letter: DeadLetter) -> str:
    return reverse("admin:kew_django_deadletter_edit", args=[letter.pk])


@pytest.mark.parametrize(
    ("text", "reason"), [(DEEP, "nested too deeply"), (HUGE_INT, "integer is too large")]
)
def test_unparseable_edits_are_form_errors(admin_client, handled, dead_letter, text, reason):
    letter = dead_letter()
    response = admin_client.post(edit_url(letter), {"payload": text})
    assert response.status_code == 200
    assert reason in response.content.decode()
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.DEAD
    assert OutboxMessage.objects.count() == 0
    assert LogEntry.objects.count() == 0


@pytest.mark.parametrize("payload", [DEEP.encode(), HUGE_INT.encode()])
def test_a_poison_dead_letter_can_be_shown_and_edited(admin_client, handled, dead_letter, payload):
    letter = dead_letter(payload=payload, reason=DeadLetter.Reason.UNDECODABLE)
    detail = admin_client.get(reverse("admin:kew_django_deadletter_change", args=[letter.pk]))
    assert detail.status_code == 200
    assert "Not JSON" in detail.content.decode()
    assert admin_client.get(edit_url(letter)).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/admin/kew_django/deadletter/not-a-number/change/",
        "/admin/kew_django/deadletter/99999999999999999999999/change/",
        "/admin/kew_django/deadletter/99999999999999999999999/confirm/requeue/",
        "/admin/kew_django/deadletter/99999999999999999999999/edit-and-requeue/",
        "/admin/kew_django/deadletter/x%00y/confirm/requeue/",
        "/admin/kew_django/outboxmessage/not-a-uuid/change/",
        "/admin/kew_django/outboxmessage/not-a-uuid/confirm/retry_now/",
        "/admin/kew_django/outboxmessage/99999999999999999999999/change/",
        "/admin/kew_django/processedmessage/nope/change/",
    ],
)
def test_a_malformed_id_in_an_admin_url_is_not_a_server_error(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code in (302, 404), response.status_code
