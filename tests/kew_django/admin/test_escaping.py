"""Nothing from a message is ever executed: payloads, headers, errors are shown escaped."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

SCRIPT = "</pre><script>alert('kew')</script>"
ESCAPED = "&lt;/pre&gt;&lt;script&gt;alert(&#x27;kew&#x27;)&lt;/script&gt;"


def assert_escaped(content: str) -> None:
    assert "<script>alert(" not in content
    assert ESCAPED in content


@pytest.mark.parametrize(
    "payload",
    [json.dumps({"note": SCRIPT}).encode(), SCRIPT.encode(), SCRIPT.encode() + b"\xff"],
    ids=["json", "text", "bytes"],
)
def test_dead_letter_pages_escape_the_payload(admin_client, dead_letter, handled, payload):
    letter = dead_letter(payload=payload, error=SCRIPT, traceback=SCRIPT, headers={"x": SCRIPT})
    pages = [
        reverse("admin:kew_django_deadletter_change", args=[letter.pk]),
        reverse("admin:kew_django_deadletter_edit", args=[letter.pk]),
    ]
    for url in pages:
        assert_escaped(admin_client.get(url).content.decode())


def test_the_list_and_dashboard_escape_queue_names_and_errors(
    admin_client, dead_letter, outbox_message
):
    dead_letter(queue=SCRIPT, error=SCRIPT)
    outbox_message(queue=SCRIPT, last_error=SCRIPT, payload=SCRIPT.encode())
    for name in ("deadletter_changelist", "outboxmessage_changelist", "dashboard"):
        content = admin_client.get(reverse(f"admin:kew_django_{name}")).content.decode()
        assert "<script>alert(" not in content
    row_url = reverse("admin:kew_django_outboxmessage_changelist")
    response = admin_client.get(row_url)
    row = response.context["cl"].result_list[0]
    page = admin_client.get(reverse("admin:kew_django_outboxmessage_change", args=[row.pk]))
    assert_escaped(page.content.decode())


def test_the_confirmation_page_escapes_queue_names(admin_client, dead_letter):
    letter = dead_letter(queue=SCRIPT)
    response = admin_client.post(
        reverse("admin:kew_django_deadletter_changelist"),
        {"action": "requeue", "_selected_action": [letter.pk]},
    )
    assert_escaped(response.content.decode())


def test_an_edit_with_a_script_is_stored_as_data_and_shown_escaped(
    admin_client, dead_letter, handled
):
    letter = dead_letter()
    edited = json.dumps({"order_id": 1, "customer": SCRIPT})
    admin_client.post(
        reverse("admin:kew_django_deadletter_edit", args=[letter.pk]), {"payload": edited}
    )
    letter.refresh_from_db()
    page = admin_client.get(
        reverse("admin:kew_django_outboxmessage_change", args=[letter.requeued_as])
    )
    assert_escaped(page.content.decode())
