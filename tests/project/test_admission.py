"""Admission control: 429 past the per-user bound, 503 past the backlog bound, 202 below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone

from kew_django.models import OutboxMessage, QueuedMessage
from kew_django.observability.admission import BACKLOG, PER_KEY, refusals
from kew_django.providers import providers as handler
from kew_django.runner import relay_from_settings
from project.imports.checks import check_admission_settings
from project.imports.messages import IMPORTS_QUEUE, import_requests
from project.imports.models import Import
from tests.kew_django.conftest import OUTBOX_SENDS

URL = "/imports/"


@pytest.fixture(autouse=True)
def counted():
    """Start every test with no refusal counted."""
    refusals.clear()
    yield refusals
    refusals.clear()


@pytest.fixture(params=["database://"])
def providers(request, settings):
    """The database provider, closed afterwards (on PostgreSQL it holds a LISTEN connection)."""
    settings.KEW = {"PROVIDERS": {"default": {"URL": request.param}}}
    handler.close_all()
    yield handler
    handler.close_all()


@pytest.fixture
def client(ada):
    """A browser logged in as ada."""
    from django.test import Client

    browser = Client()
    browser.force_login(ada)
    return browser


@pytest.fixture
def bounds(settings):
    """Small bounds: 3 imports waiting in all, 2 pending per user; Retry-After 7 s."""
    settings.IMPORT_MAX_BACKLOG = 3
    settings.IMPORT_MAX_PENDING_PER_USER = 2
    settings.IMPORT_RETRY_AFTER = 7
    return settings


def post(client):
    return client.post(URL, data=json.dumps({"path": "sample"}), content_type="application/json")


def assert_refused(response, status: int) -> None:
    assert response.status_code == status
    assert response["Retry-After"] == "7"
    assert response.json()["retry_after"] == 7
    assert "try again later" in response.json()["error"]


@pytest.mark.django_db
def test_a_user_with_too_many_pending_gets_429_until_one_ends(client, import_root, bounds):
    bounds.IMPORT_MAX_BACKLOG = 100
    assert [post(client).status_code for _ in range(2)] == [202, 202]
    assert_refused(post(client), 429)
    sent = OutboxMessage.objects.count() + QueuedMessage.objects.count()
    assert Import.objects.count() == sent == 2  # nothing dropped
    finished = {"status": Import.Status.SUCCEEDED, "finished_at": timezone.now()}
    Import.objects.filter(pk=Import.objects.first().pk).update(**finished)
    assert post(client).status_code == 202
    assert refusals.counts() == {(IMPORTS_QUEUE, PER_KEY): 1}


@pytest.mark.django_db
def test_another_user_is_not_refused_for_ada_s_imports(
    client, import_root, bounds, django_user_model
):
    bounds.IMPORT_MAX_BACKLOG = 100
    for _ in range(2):
        post(client)
    from django.test import Client

    grace = django_user_model.objects.create_user("grace", email="g@example.org", password=None)
    other = Client()
    other.force_login(grace)
    assert post(other).status_code == 202


@pytest.mark.django_db(transaction=True)
def test_direct_sends_count_in_the_backlog_at_once(client, import_root, bounds, providers):
    bounds.IMPORT_MAX_PENDING_PER_USER = 100
    assert [post(client).status_code for _ in range(3)] == [202, 202, 202]
    assert_refused(post(client), 503)
    backlog = import_requests.backlog()
    assert (backlog.outbox, backlog.queued) == (0, 3)  # in the queue at once, no relay hop
    assert refusals.counts() == {(IMPORTS_QUEUE, BACKLOG): 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("providers", [OUTBOX_SENDS], indirect=True)  # the outbox, then the queue
def test_a_full_backlog_gets_503_counting_the_queue_until_drained(
    client, import_root, bounds, providers, django_user_model
):
    bounds.IMPORT_MAX_PENDING_PER_USER = 100
    assert [post(client).status_code for _ in range(3)] == [202, 202, 202]
    assert_refused(post(client), 503)
    assert import_requests.backlog().outbox == 3
    relay_from_settings(queues=[IMPORTS_QUEUE]).relay_all()
    backlog = import_requests.backlog()
    assert (backlog.outbox, backlog.queued) == (0, 3)  # the provider's queue counts too
    assert_refused(post(client), 503)
    with providers["default"].receiver(IMPORTS_QUEUE) as receiver:
        delivery = receiver.receive(timeout=5)
        assert delivery is not None
        delivery.ack()
    assert post(client).status_code == 202  # below the bound again
    assert Import.objects.count() == 4  # every accepted import kept, none dropped
    assert (
        providers["default"].pending(IMPORTS_QUEUE)
        + OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).count()
        == 3
    )
    assert refusals.counts() == {(IMPORTS_QUEUE, BACKLOG): 2}


@pytest.mark.django_db
def test_refusals_are_served_as_a_metric(client, import_root, bounds, admin_client):
    bounds.IMPORT_MAX_PENDING_PER_USER = 1
    post(client)
    post(client)
    text = admin_client.get("/kew/metrics").content.decode()
    assert (
        'kew_admissions_refused_total{kew_reason="per_key",'
        'messaging_destination_name="imports"} 1.0'
    ) in text


@pytest.mark.parametrize("value", [0, -1, "10", None, True])
def test_bad_admission_settings_are_system_check_errors(settings, value):
    settings.IMPORT_MAX_BACKLOG = value
    (error,) = check_admission_settings()
    assert error.id == "imports.E004"
    assert "IMPORT_MAX_BACKLOG" in error.msg


def test_a_bad_import_concurrency_is_a_system_check_error(settings):
    settings.IMPORT_CONCURRENCY = 0
    (error,) = check_admission_settings()
    assert error.id == "imports.E004" and "IMPORT_CONCURRENCY" in error.msg


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "(imports.E004) IMPORT_MAX_BACKLOG must be a whole number of at least 1, not 0"),
        ("lots", "ImproperlyConfigured: IMPORT_MAX_BACKLOG must be a whole number, not 'lots'"),
    ],
)
def test_manage_py_check_names_a_bad_bound_from_the_environment(value, error):
    env = {**os.environ, "IMPORT_MAX_BACKLOG": value}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's own: project.settings
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert error in result.stderr
