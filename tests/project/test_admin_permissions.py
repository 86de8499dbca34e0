"""Admin screens of the reference app: who may mint API tokens and re-send outcome e-mails."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from kew_django.models import OutboxMessage, QueuedMessage
from project.imports.models import ApiToken, Import

pytestmark = pytest.mark.django_db


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return user, client


def test_staff_who_may_add_tokens_cannot_mint_one_for_a_superuser(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.org", None)
    _, client = staff_with(django_user_model, "clerk", "add_apitoken", "view_apitoken")
    response = client.post("/admin/imports/apitoken/add/", {"user": root.pk, "name": "steal"})
    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not ApiToken.objects.exists()


def test_staff_who_may_add_tokens_can_mint_their_own(django_user_model):
    clerk, client = staff_with(django_user_model, "clerk", "add_apitoken", "view_apitoken")
    form_page = client.get("/admin/imports/apitoken/add/")
    assert list(form_page.context["adminform"].form.fields["user"].queryset) == [clerk]
    response = client.post("/admin/imports/apitoken/add/", {"user": clerk.pk, "name": "own"})
    assert response.status_code == 200 and response.context["key"]
    assert ApiToken.objects.get().user == clerk


def test_a_superuser_may_mint_a_token_for_another_user_and_it_is_logged(django_user_model, caplog):
    root = django_user_model.objects.create_superuser("root", "root@example.org", None)
    ada = django_user_model.objects.create_user("ada", email="ada@example.org")
    client = Client()
    client.force_login(root)
    with caplog.at_level(logging.WARNING, logger="project.imports.admin"):
        response = client.post("/admin/imports/apitoken/add/", {"user": ada.pk, "name": "lab"})
    assert response.status_code == 200
    assert ApiToken.objects.get().user == ada
    assert any("made for user ada by root" in r.getMessage() for r in caplog.records)


def finished_import() -> Import:
    now = timezone.now()
    return Import.objects.create(
        requested_path="sample",
        path="sample",
        email="ada@example.org",
        status=Import.Status.SUCCEEDED,
        finished_at=now,
    )


def messages() -> int:
    """Return how many messages were sent and not consumed: outbox rows and queue rows."""
    return OutboxMessage.objects.count() + QueuedMessage.objects.count()


def offered_actions(client: Client) -> set[str]:
    form = client.get("/admin/imports/import/").context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices}


def test_resending_an_outcome_needs_its_own_permission(django_user_model):
    item = finished_import()
    _, clerk = staff_with(django_user_model, "clerk", "view_import", "change_import")
    assert "resend_outcome_email" not in offered_actions(clerk)
    before = messages()
    clerk.post(
        "/admin/imports/import/",
        {"action": "resend_outcome_email", "_selected_action": [str(item.pk)]},
    )
    assert messages() == before

    _, mailer = staff_with(django_user_model, "mailer", "view_import", "resend_outcome_email")
    assert "resend_outcome_email" in offered_actions(mailer)
    mailer.post(
        "/admin/imports/import/",
        {"action": "resend_outcome_email", "_selected_action": [str(item.pk)]},
    )
    assert messages() == before + 1
