"""The dead-letter screens: list, detail, bulk requeue and discard with confirmation."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from kew_django.models import DeadLetter, OutboxMessage

from .conftest import QUEUE

pytestmark = pytest.mark.django_db

State = DeadLetter.State
CHANGELIST = reverse("admin:kew_django_deadletter_changelist")


def change_url(letter: DeadLetter) -> str:
    return reverse("admin:kew_django_deadletter_change", args=[letter.pk])


def act(client, action: str, letters, *, confirm: bool = False, **extra):
    data = {"action": action, "_selected_action": [letter.pk for letter in letters], **extra}
    if confirm:
        data["post"] = "yes"
    return client.post(CHANGELIST, data)


def test_list_shows_queue_reason_state_and_attempts(admin_client, dead_letter):
    dead_letter(queue="mail", reason=DeadLetter.Reason.UNDECODABLE, attempts=1)
    content = admin_client.get(CHANGELIST).content.decode()
    for text in ("mail", "Undecodable payload", "Dead", "ValueError: stock service down"):
        assert text in content


def test_list_filters_and_search(admin_client, dead_letter):
    dead_letter(queue="mail", message_id="needle-1")
    dead_letter(queue="reports", message_id="other", error="KeyError: 'size'")
    dead_letter(queue="reports", state=State.DISCARDED, message_id="gone")

    def shown(query: dict) -> set[str]:
        response = admin_client.get(CHANGELIST, query)
        return {letter.message_id for letter in response.context["cl"].result_list}

    assert shown({"queue": "reports"}) == {"other", "gone"}
    assert shown({"state__exact": "dead"}) == {"needle-1", "other"}
    assert shown({"reason__exact": "exhausted", "state__exact": "discarded"}) == {"gone"}
    assert shown({"q": "needle"}) == {"needle-1"}
    assert shown({"q": "KeyError"}) == {"other"}
    assert shown({"q": "mail"}) == {"needle-1"}


def test_detail_shows_payload_headers_error_and_traceback(admin_client, dead_letter):
    letter = dead_letter(payload=b'{"order_id":1,"customer":"Ada"}')
    content = admin_client.get(change_url(letter)).content.decode()
    assert '<pre class="kew-pre kew-json">{\n  &quot;order_id&quot;: 1,' in content
    assert "&quot;trace&quot;: &quot;t-1&quot;" in content
    assert '<pre class="kew-pre">ValueError: stock service down</pre>' in content
    assert "Traceback (most recent call last):" in content
    assert 'name="_save"' not in content  # nothing to edit by hand


def test_detail_of_an_undecodable_payload_shows_text_and_hex(admin_client, dead_letter):
    letter = dead_letter(payload=b"\x00\xffname=Ada", reason=DeadLetter.Reason.UNDECODABLE)
    content = admin_client.get(change_url(letter)).content.decode()
    assert "Not JSON (10 bytes)" in content
    assert "\\x00\\xffname=Ada" in content
    assert "00000000  00 ff 6e 61 6d 65 3d 41 64 61" in content


def test_bulk_requeue_asks_first_and_says_how_many_in_which_queues(admin_client, dead_letter):
    letters = [dead_letter(), dead_letter(), dead_letter(queue="mail")]
    letters.append(dead_letter(queue="mail", state=State.REQUEUED))
    letters.append(dead_letter(queue="reports", state=State.DISCARDED))

    response = act(admin_client, "requeue", letters)

    assert response.status_code == 200
    assert response.templates[0].name == "admin/kew_django/confirm_operation.html"
    preview = response.context["preview"]
    assert (preview.count, preview.skipped, preview.queues) == (3, 2, {"mail": 1, QUEUE: 2})
    content = response.content.decode()
    assert 'id="kew-confirm-count">3</strong>' in content
    assert "in 2 queues" in content
    assert "2 selected dead letters are\n    not dead and will be skipped" in content
    assert OutboxMessage.objects.count() == 0  # nothing done yet


def test_confirmed_bulk_requeue_requeues_and_logs(admin_client, admin_user, dead_letter):
    letters = [dead_letter(), dead_letter(queue="mail"), dead_letter(state=State.DISCARDED)]

    response = act(admin_client, "requeue", letters, confirm=True)

    assert response.status_code == 302
    assert OutboxMessage.objects.count() == 2
    assert set(DeadLetter.objects.values_list("state", flat=True)) == {"requeued", "discarded"}
    changes = LogEntry.objects.filter(action_flag=CHANGE, user=admin_user)
    assert sorted(int(entry.object_id) for entry in changes) == [letters[0].pk, letters[1].pk]
    entry = changes.get(object_id=str(letters[0].pk))
    letters[0].refresh_from_db()
    assert entry.change_message == f"Requeued as outbox message {letters[0].requeued_as}."
    assert entry.content_type.model == "deadletter"
    additions = LogEntry.objects.filter(action_flag=ADDITION, user=admin_user)
    assert {entry.object_id for entry in additions} == {
        str(pk) for pk in OutboxMessage.objects.values_list("pk", flat=True)
    }
    messages = [m.message for m in response.wsgi_request._messages]
    assert messages == ["Requeue: 2 dead letters. Skipped 1 that were not dead."]


def test_requeue_across_all_filtered_rows(admin_client, dead_letter):
    dead_letter(queue="mail")
    dead_letter(queue="mail")
    dead_letter(queue="reports")
    first = DeadLetter.objects.filter(queue="mail").first()
    url = f"{CHANGELIST}?queue=mail"

    data = {"action": "requeue", "_selected_action": [first.pk], "select_across": "1"}
    response = admin_client.post(url, {**data, "index": "0"})
    assert response.context["preview"].count == 2
    assert 'name="select_across" value="1"' in response.content.decode()

    admin_client.post(url, {**data, "post": "yes"})
    assert OutboxMessage.objects.filter(queue="mail").count() == 2
    assert DeadLetter.objects.get(queue="reports").state == State.DEAD


def test_bulk_action_on_nothing_dead_says_so(admin_client, dead_letter):
    letter = dead_letter(state=State.REQUEUED)
    response = act(admin_client, "discard", [letter], index="0")
    assert response.status_code == 302
    messages = [m.message for m in response.wsgi_request._messages]
    assert messages == ["None of the 1 selected dead letters is dead: nothing to discard."]


def test_bulk_discard_asks_then_discards_and_logs(admin_client, admin_user, dead_letter):
    letters = [dead_letter(), dead_letter(queue="mail")]
    response = act(admin_client, "discard", letters)
    assert response.context["preview"].count == 2
    assert set(DeadLetter.objects.values_list("state", flat=True)) == {"dead"}

    act(admin_client, "discard", letters, confirm=True)

    assert set(DeadLetter.objects.values_list("state", flat=True)) == {"discarded"}
    assert OutboxMessage.objects.count() == 0
    entries = LogEntry.objects.filter(user=admin_user, action_flag=CHANGE)
    assert [e.change_message for e in entries] == ["Discarded (kept for the record)."] * 2


def test_detail_page_buttons_lead_to_the_same_confirmation(admin_client, dead_letter):
    letter = dead_letter()
    content = admin_client.get(change_url(letter)).content.decode()
    confirm = reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"])
    assert f'href="{confirm}"' in content
    assert reverse("admin:kew_django_deadletter_edit", args=[letter.pk]) in content

    response = admin_client.get(confirm)
    assert response.context["preview"].count == 1
    assert f'action="{CHANGELIST}"' in response.content.decode()
    assert f'name="_selected_action" value="{letter.pk}"' in response.content.decode()


def test_no_buttons_on_a_letter_that_is_not_dead(admin_client, dead_letter):
    letter = dead_letter(state=State.REQUEUED, requeued_as="abc")
    content = admin_client.get(change_url(letter)).content.decode()
    assert 'id="kew-requeue"' not in content
    assert 'id="kew-discard"' not in content
    response = admin_client.get(
        reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"])
    )
    assert response.status_code == 302


def test_requeued_as_links_to_the_new_outbox_row(admin_client, dead_letter):
    letter = dead_letter()
    act(admin_client, "requeue", [letter], confirm=True)
    letter.refresh_from_db()
    content = admin_client.get(change_url(letter)).content.decode()
    url = reverse("admin:kew_django_outboxmessage_change", args=[letter.requeued_as])
    assert f'<a href="{url}">{letter.requeued_as}</a>' in content
