"""The outbox screens: list, detail, retry now and discard."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from kew_django.models import OutboxMessage

pytestmark = pytest.mark.django_db

Status = OutboxMessage.Status
CHANGELIST = reverse("admin:kew_django_outboxmessage_changelist")


def act(client, action: str, rows, *, confirm: bool = False):
    data = {"action": action, "_selected_action": [str(row.pk) for row in rows]}
    if confirm:
        data["post"] = "yes"
    return client.post(CHANGELIST, data)


def test_list_shows_status_queue_attempts_and_error(admin_client, outbox_message):
    outbox_message(queue="mail", attempts=3, last_error="broker says no")
    content = admin_client.get(CHANGELIST).content.decode()
    for text in ("mail", "Failed", "broker says no", ">3<"):
        assert text in content


def test_list_filters_and_search(admin_client, outbox_message):
    failed = outbox_message(queue="mail", last_error="message too large")
    pending = outbox_message(queue="reports", status=Status.PENDING, last_error="")
    sent = outbox_message(queue="reports", status=Status.SENT, last_error="")

    def shown(query: dict) -> set:
        response = admin_client.get(CHANGELIST, query)
        return {row.pk for row in response.context["cl"].result_list}

    assert shown({"status__exact": "pending"}) == {pending.pk}
    assert shown({"queue": "reports"}) == {pending.pk, sent.pk}
    assert shown({"q": "too large"}) == {failed.pk}
    assert shown({"q": str(sent.pk)}) == {sent.pk}
    assert shown({"q": "mail"}) == {failed.pk}


def test_detail_shows_payload_and_headers(admin_client, outbox_message):
    row = outbox_message(headers={"tenant": "lab-3"})
    url = reverse("admin:kew_django_outboxmessage_change", args=[row.pk])
    content = admin_client.get(url).content.decode()
    assert "&quot;customer&quot;: &quot;Ada&quot;" in content
    assert "&quot;tenant&quot;: &quot;lab-3&quot;" in content
    assert "broker refused: too large" in content
    assert 'name="_save"' not in content


def test_nothing_is_added_or_edited_by_hand(admin_client, outbox_message):
    row = outbox_message()
    assert admin_client.get(reverse("admin:kew_django_outboxmessage_add")).status_code == 403
    url = reverse("admin:kew_django_outboxmessage_change", args=[row.pk])
    response = admin_client.post(url, {"queue": "elsewhere", "status": "sent"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.queue, row.status) == ("test.admin.orders", Status.FAILED)
    delete = reverse("admin:kew_django_outboxmessage_delete", args=[row.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert OutboxMessage.objects.count() == 1


def test_retry_now_asks_then_retries_failed_rows(admin_client, admin_user, outbox_message):
    rows = [outbox_message(), outbox_message(queue="mail"), outbox_message(status=Status.SENT)]

    response = act(admin_client, "retry_now", rows)
    preview = response.context["preview"]
    assert (preview.count, preview.skipped) == (2, 1)
    assert "1 selected outbox message is\n    not failed and will be skipped" in (
        response.content.decode()
    )
    assert OutboxMessage.objects.filter(status=Status.FAILED).count() == 2

    act(admin_client, "retry_now", rows, confirm=True)

    for row in rows[:2]:
        row.refresh_from_db()
        assert (row.status, row.attempts) == (Status.PENDING, 0)
    entries = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert {e.object_id for e in entries} == {str(rows[0].pk), str(rows[1].pk)}
    assert entries[0].change_message == "Retried: failed → pending, attempts reset, due now."


def test_discard_asks_then_discards_pending_and_failed(admin_client, admin_user, outbox_message):
    rows = [outbox_message(), outbox_message(status=Status.PENDING)]
    rows.append(outbox_message(status=Status.SENT))

    response = act(admin_client, "discard", rows)
    assert response.context["preview"].count == 2

    act(admin_client, "discard", rows, confirm=True)

    assert sorted(OutboxMessage.objects.values_list("status", flat=True)) == [
        "discarded",
        "discarded",
        "sent",
    ]
    assert LogEntry.objects.filter(user=admin_user, action_flag=CHANGE).count() == 2


def test_processed_messages_are_listed_read_only(admin_client):
    from kew_django.models import ProcessedMessage

    ProcessedMessage.objects.create(consumer="orders.take", message_id="m-9")
    changelist = reverse("admin:kew_django_processedmessage_changelist")
    content = admin_client.get(changelist).content.decode()
    assert "orders.take" in content and "m-9" in content
    assert admin_client.get(reverse("admin:kew_django_processedmessage_add")).status_code == 403
    assert 'name="action"' not in content  # no bulk delete either


def test_detail_page_offers_the_operations_that_apply(admin_client, outbox_message):
    failed, sent = outbox_message(), outbox_message(status=Status.SENT)
    content = admin_client.get(
        reverse("admin:kew_django_outboxmessage_change", args=[failed.pk])
    ).content.decode()
    retry = reverse("admin:kew_django_outboxmessage_confirm", args=[failed.pk, "retry_now"])
    assert f'id="kew-retry_now" href="{retry}"' in content
    assert 'id="kew-discard"' in content
    content = admin_client.get(
        reverse("admin:kew_django_outboxmessage_change", args=[sent.pk])
    ).content.decode()
    assert 'id="kew-retry_now"' not in content and 'id="kew-discard"' not in content

    response = admin_client.get(retry)
    assert response.context["preview"].count == 1
    assert f'name="_selected_action" value="{failed.pk}"' in response.content.decode()
    admin_client.post(
        CHANGELIST, {"action": "retry_now", "_selected_action": [str(failed.pk)], "post": "yes"}
    )
    failed.refresh_from_db()
    assert failed.status == Status.PENDING

    not_failed = reverse("admin:kew_django_outboxmessage_confirm", args=[sent.pk, "retry_now"])
    response = admin_client.get(not_failed)
    assert response.status_code == 302
    assert [m.message for m in response.wsgi_request._messages] == [
        "Retry: 1 outbox message.",  # from the post before, never shown
        "This outbox message is not failed.",
    ]


def test_an_unknown_operation_is_not_found(admin_client, outbox_message):
    row = outbox_message()
    for name in ("delete", "edit_and_requeue"):
        url = reverse("admin:kew_django_outboxmessage_confirm", args=[row.pk, name])
        assert admin_client.get(url).status_code == 404
