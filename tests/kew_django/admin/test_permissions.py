"""Who sees what: staff with model permissions only; each action needs its own permission."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from kew_django.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db

DEAD_LETTERS = reverse("admin:kew_django_deadletter_changelist")
OUTBOX = reverse("admin:kew_django_outboxmessage_changelist")
DASHBOARD = reverse("admin:kew_django_dashboard")


def action_names(response) -> set[str]:
    if "action_form" not in response.context or response.context["action_form"] is None:
        return set()
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(operator, dead_letter):
    client = operator("view_deadletter", "requeue_deadletter", staff=False)
    letter = dead_letter()
    for url in [
        DEAD_LETTERS,
        DASHBOARD,
        reverse("admin:kew_django_deadletter_edit", args=[letter.pk]),
        reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response.url


def test_staff_without_view_permission_sees_nothing(operator, dead_letter):
    client = operator()
    letter = dead_letter()
    assert client.get(DEAD_LETTERS).status_code == 403
    assert client.get(OUTBOX).status_code == 403
    assert client.get(DASHBOARD).status_code == 403
    url = reverse("admin:kew_django_deadletter_change", args=[letter.pk])
    assert client.get(url).status_code == 403
    assert "Kew messaging" not in client.get(reverse("admin:index")).content.decode()


def test_view_permission_shows_the_screens_without_actions(operator, dead_letter):
    client = operator("view_deadletter")
    letter = dead_letter()
    response = client.get(DEAD_LETTERS)
    assert response.status_code == 200
    assert action_names(response) == set()
    content = client.get(reverse("admin:kew_django_deadletter_change", args=[letter.pk]))
    assert 'id="kew-requeue"' not in content.content.decode()
    assert 'id="kew-discard"' not in content.content.decode()


@pytest.mark.parametrize("action", ["requeue", "edit_and_requeue", "discard"])
def test_posting_an_action_without_its_permission_is_refused(operator, dead_letter, action):
    client = operator("view_deadletter")
    letter = dead_letter()
    for extra in ({}, {"post": "yes"}, {"index": "0"}):
        data = {"action": action, "_selected_action": [letter.pk], **extra}
        assert client.post(DEAD_LETTERS, data).status_code == 403
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.DEAD
    assert OutboxMessage.objects.count() == 0
    assert LogEntry.objects.count() == 0


def test_requeue_permission_allows_requeue_but_not_discard(operator, dead_letter, handled):
    client = operator("view_deadletter", "requeue_deadletter")
    letter = dead_letter()
    assert action_names(client.get(DEAD_LETTERS)) == {"requeue", "edit_and_requeue"}
    page = client.get(reverse("admin:kew_django_deadletter_change", args=[letter.pk]))
    assert 'id="kew-requeue"' in page.content.decode()
    assert 'id="kew-discard"' not in page.content.decode()
    discard = reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "discard"])
    assert client.get(discard).status_code == 403

    data = {"action": "requeue", "_selected_action": [letter.pk], "post": "yes"}
    assert client.post(DEAD_LETTERS, data).status_code == 302
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.REQUEUED
    assert LogEntry.objects.get(object_id=str(letter.pk)).user == client.user


def test_discard_permission_allows_discard_but_not_requeue(operator, dead_letter, handled):
    client = operator("view_deadletter", "discard_deadletter")
    letter = dead_letter()
    assert action_names(client.get(DEAD_LETTERS)) == {"discard"}
    edit = reverse("admin:kew_django_deadletter_edit", args=[letter.pk])
    assert client.get(edit).status_code == 403
    assert client.post(edit, {"payload": '{"order_id": 1, "customer": "A"}'}).status_code == 403
    requeue = reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"])
    assert client.get(requeue).status_code == 403
    assert OutboxMessage.objects.count() == 0

    data = {"action": "discard", "_selected_action": [letter.pk], "post": "yes"}
    client.post(DEAD_LETTERS, data)
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.DISCARDED


def test_outbox_actions_need_their_own_permissions(operator, outbox_message):
    row = outbox_message()
    viewer = operator("view_outboxmessage")
    assert action_names(viewer.get(OUTBOX)) == set()
    for action in ("retry_now", "discard"):
        data = {"action": action, "_selected_action": [str(row.pk)], "post": "yes"}
        assert viewer.post(OUTBOX, data).status_code == 403

    retrier = operator("view_outboxmessage", "retry_outboxmessage")
    assert action_names(retrier.get(OUTBOX)) == {"retry_now"}
    data = {"action": "discard", "_selected_action": [str(row.pk)], "post": "yes"}
    assert retrier.post(OUTBOX, data).status_code == 403
    row.refresh_from_db()
    assert row.status == OutboxMessage.Status.FAILED

    discarder = operator("view_outboxmessage", "discard_outboxmessage")
    assert action_names(discarder.get(OUTBOX)) == {"discard"}
    discarder.post(OUTBOX, data)
    row.refresh_from_db()
    assert row.status == OutboxMessage.Status.DISCARDED


def test_the_dashboard_needs_view_permission_on_outbox_and_dead_letters(operator):
    assert operator("view_outboxmessage").get(DASHBOARD).status_code == 403
    assert operator("view_deadletter").get(DASHBOARD).status_code == 403
    client = operator("view_outboxmessage", "view_deadletter")
    assert client.get(DASHBOARD).status_code == 200
    app_index = client.get(reverse("admin:app_list", args=["kew_django"])).content.decode()
    assert f'href="{DASHBOARD}"' in app_index
    app_index = operator("view_outboxmessage").get(reverse("admin:app_list", args=["kew_django"]))
    assert DASHBOARD not in app_index.content.decode()


def test_requeue_permission_without_view_permission_sees_no_payload(operator, dead_letter, handled):
    client = operator("requeue_deadletter")
    letter = dead_letter(payload=b'{"order_id":1,"customer":"secret customer"}')
    edit = reverse("admin:kew_django_deadletter_edit", args=[letter.pk])
    confirm = reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"])
    for response in (client.get(edit), client.get(confirm)):
        assert response.status_code == 403
        assert "secret customer" not in response.content.decode()
    assert client.post(edit, {"payload": '{"order_id": 1, "customer": "A"}'}).status_code == 403
    assert client.post(confirm, {"post": "yes"}).status_code == 403
    letter.refresh_from_db()
    assert letter.state == DeadLetter.State.DEAD
    assert OutboxMessage.objects.count() == 0


def test_retry_permission_without_view_permission_cannot_confirm(operator, outbox_message):
    row = outbox_message()
    client = operator("retry_outboxmessage")
    confirm = reverse("admin:kew_django_outboxmessage_confirm", args=[row.pk, "retry_now"])
    assert client.get(confirm).status_code == 403
