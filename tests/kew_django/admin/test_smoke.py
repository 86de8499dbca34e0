from django.urls import reverse


def test_pages_render(admin_client, dead_letter, outbox_message):
    letter = dead_letter()
    message = outbox_message()
    for url in [
        reverse("admin:index"),
        reverse("admin:app_list", args=["kew_django"]),
        reverse("admin:kew_django_deadletter_changelist"),
        reverse("admin:kew_django_deadletter_change", args=[letter.pk]),
        reverse("admin:kew_django_outboxmessage_changelist"),
        reverse("admin:kew_django_outboxmessage_change", args=[message.pk]),
        reverse("admin:kew_django_processedmessage_changelist"),
        reverse("admin:kew_django_dashboard"),
        reverse("admin:kew_django_deadletter_edit", args=[letter.pk]),
        reverse("admin:kew_django_deadletter_confirm", args=[letter.pk, "requeue"]),
    ]:
        response = admin_client.get(url)
        assert response.status_code == 200, url
