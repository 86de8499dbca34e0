"""Edit a dead letter's payload as JSON, checked against its consumer's type, and requeue it."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse

from kew_django.models import DeadLetter, OutboxMessage

from .conftest import QUEUE

pytestmark = pytest.mark.django_db

State = DeadLetter.State


def edit_url(letter: DeadLetter) -> str:
    return reverse("admin:kew_django_deadletter_edit", args=[letter.pk])


def assert_nothing_written(letter: DeadLetter) -> None:
    letter.refresh_from_db()
    assert letter.state == State.DEAD and not letter.requeued_as
    assert OutboxMessage.objects.count() == 0
    assert LogEntry.objects.count() == 0


def test_form_shows_the_payload_indented_and_the_expected_type(admin_client, handled, dead_letter):
    letter = dead_letter(payload=b'{"order_id":1,"customer":"Ada"}')
    response = admin_client.get(edit_url(letter))
    content = response.content.decode()
    assert "{\n  &quot;order_id&quot;: 1,\n  &quot;customer&quot;: &quot;Ada&quot;\n}" in content
    assert "must decode as <code>Order</code>" in content
    assert "tests.kew_django.admin.conftest.handled.&lt;locals&gt;.take_order" in content


def test_a_valid_edit_requeues_the_edited_payload(admin_client, admin_user, handled, dead_letter):
    letter = dead_letter(payload=b'{"order_id":1,"customer":"Ada","size":"XL"}')
    edited = json.dumps({"order_id": 1, "customer": "Ada", "note": "size removed"}, indent=2)

    response = admin_client.post(edit_url(letter), {"payload": edited})

    assert response.status_code == 302
    assert response.url == reverse("admin:kew_django_deadletter_change", args=[letter.pk])
    message = OutboxMessage.objects.get()
    assert bytes(message.payload) == b'{"order_id":1,"customer":"Ada","note":"size removed"}'
    assert (message.queue, message.content_type, message.requeue_of) == (
        QUEUE,
        "application/json",
        letter.message_id,
    )
    letter.refresh_from_db()
    assert (letter.state, letter.requeued_as) == (State.REQUEUED, str(message.pk))
    assert bytes(letter.payload) == b'{"order_id":1,"customer":"Ada","size":"XL"}'
    change = LogEntry.objects.get(action_flag=CHANGE, user=admin_user)
    assert change.object_id == str(letter.pk)
    assert change.change_message == (
        f"Edited the payload and requeued as outbox message {message.pk}."
    )
    addition = LogEntry.objects.get(action_flag=ADDITION, user=admin_user)
    assert addition.object_id == str(message.pk)


@pytest.mark.parametrize(
    ("edited", "error"),
    [
        ('{"order_id": 1, "customer": "Ada"', "Not valid JSON: Expecting &#x27;,&#x27; delimiter"),
        ("", "This field is required."),
        ('{"order_id": 1}', "missing field(s) customer"),
        ('{"order_id": 1, "customer": "Ada", "size": 3}', "unknown field(s) size"),
        ('{"order_id": "one", "customer": "Ada"}', "expected int, got str"),
        ('[1, "Ada"]', "expected an object for Order, got list"),
        ('{"order_id": NaN, "customer": "Ada"}', "Not valid JSON: NaN is not a JSON value"),
        ('{"order_id": 1, "customer": -Infinity}', "Not valid JSON: -Infinity is not a JSON"),
        ('{"order_id": 1, "customer": "\\ud800"}', "a string holds a lone surrogate"),
    ],
)
def test_an_invalid_edit_changes_nothing(admin_client, handled, dead_letter, edited, error):
    letter = dead_letter()
    response = admin_client.post(edit_url(letter), {"payload": edited})
    assert response.status_code == 200
    content = response.content.decode()
    assert error in content
    assert "Please correct the error below." in content
    assert_nothing_written(letter)


def test_the_type_error_names_the_queue_and_the_type(admin_client, handled, dead_letter):
    letter = dead_letter()
    response = admin_client.post(edit_url(letter), {"payload": '{"order_id": 2}'})
    (error,) = response.context["form"].errors["payload"]
    assert error == (
        f"The consumer of {QUEUE} cannot decode this payload: "
        "payload does not fit Order: missing field(s) customer"
    )


def test_without_a_consumer_the_payload_is_checked_as_json_only(
    admin_client, registry, dead_letter
):
    letter = dead_letter(queue="nobody.listens")
    content = admin_client.get(edit_url(letter)).content.decode()
    assert "No consumer of this queue is registered in this process" in content
    response = admin_client.post(edit_url(letter), {"payload": '{"anything": true}'})
    assert response.status_code == 302
    assert bytes(OutboxMessage.objects.get().payload) == b'{"anything":true}'


def test_an_undecodable_payload_can_be_fixed(admin_client, handled, dead_letter):
    letter = dead_letter(payload=b"order_id=1\xff", reason=DeadLetter.Reason.UNDECODABLE)
    response = admin_client.get(edit_url(letter))
    assert response.context["form"].initial["payload"] == "order_id=1\ufffd"
    admin_client.post(edit_url(letter), {"payload": '{"order_id": 1, "customer": "Ada"}'})
    assert OutboxMessage.objects.get().requeue_of == letter.message_id


def test_a_letter_that_is_not_dead_cannot_be_edited(admin_client, handled, dead_letter):
    letter = dead_letter(state=State.DISCARDED)
    response = admin_client.post(edit_url(letter), {"payload": '{"order_id":1,"customer":"A"}'})
    assert response.status_code == 302
    assert [m.message for m in response.wsgi_request._messages] == [
        "This message is discarded, not dead."
    ]
    assert OutboxMessage.objects.count() == 0


def test_the_bulk_action_opens_the_form_for_exactly_one_letter(admin_client, handled, dead_letter):
    changelist = reverse("admin:kew_django_deadletter_changelist")
    one, two = dead_letter(), dead_letter()
    data = {"action": "edit_and_requeue", "index": "0"}

    response = admin_client.post(changelist, {**data, "_selected_action": [one.pk]})
    assert response.status_code == 302 and response.url == edit_url(one)

    response = admin_client.post(changelist, {**data, "_selected_action": [one.pk, two.pk]})
    assert response.url == changelist
    assert [m.message for m in response.wsgi_request._messages] == [
        "Select exactly one dead message to edit and requeue."
    ]
