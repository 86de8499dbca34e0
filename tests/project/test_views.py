"""The HTTP API and pages: validation (400, nothing stored or sent), 202, status, list."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from kew_django.models import OutboxMessage, QueuedMessage
from project.imports.messages import IMPORTS_QUEUE
from project.imports.models import Import
from tests.kew_django.conftest import written

pytestmark = pytest.mark.django_db
URL = "/imports/"


@pytest.fixture
def client(ada):
    """A browser logged in as ada."""
    from django.test import Client

    browser = Client()
    browser.force_login(ada)
    return browser


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type)


def assert_nothing_stored():
    assert Import.objects.count() == 0
    assert OutboxMessage.objects.count() == 0 and QueuedMessage.objects.count() == 0


def test_a_valid_request_is_stored_and_sent_in_one_go(client, import_root):
    response = post(client, {"path": "sample"})
    assert response.status_code == 202
    body = response.json()
    item = Import.objects.get()
    assert body["id"] == str(item.pk)
    assert body["status"] == "pending"
    assert body["status_url"] == f"http://testserver/imports/{item.pk}/"
    assert response["Location"] == body["status_url"]
    assert item.path == str(import_root / "sample")
    assert item.root == str(import_root)
    assert (item.email, item.requested_path, item.options) == ("ada@example.org", "sample", {})
    assert item.requester.username == "ada"
    assert OutboxMessage.objects.count() + QueuedMessage.objects.count() == 1
    (message,) = written(IMPORTS_QUEUE)
    assert json.loads(message.payload) == {"import_id": str(item.pk)}
    assert item.message_id == message.message_id  # the status page finds its progress by it


def test_options_are_validated_and_kept(client, import_root):
    response = post(client, {"path": "sample", "options": {"include": "*.csv"}})
    assert response.status_code == 202
    assert Import.objects.get().options == {"include": "*.csv"}


def test_an_absolute_path_inside_a_root_is_accepted(client, import_root):
    response = post(client, {"path": str(import_root / "sample" / "plates")})
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{broken", None),
        (b"  ", None),
        (b'"a string"', None),
        ({}, "path"),
        ({"path": "sample", "email": "mallory@example.org"}, "email"),
        ({"path": "sample", "priority": 1}, "priority"),
        ({"path": "../.."}, "path"),
        ({"path": "sample/../../.."}, "path"),
        ({"path": "/etc/passwd"}, "path"),
        ({"path": "escape"}, "path"),
        ({"path": "missing"}, "path"),
        ({"path": ""}, "path"),
        ({"path": 12}, "path"),
        ({"path": "sample", "options": "fast"}, "options"),
        ({"path": "sample", "options": {"turbo": True}}, "options"),
    ],
)
def test_bad_requests_are_400_and_store_nothing(client, import_root, tmp_path, body, field):
    (tmp_path / "outside").mkdir()
    (import_root / "escape").symlink_to(tmp_path / "outside")
    response = post(client, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()
    assert error["error"]
    if field is not None:
        assert field in error["fields"]
    assert_nothing_stored()


def test_a_body_that_is_not_json_is_415(client, import_root):
    response = client.post(URL, {"path": "sample"})  # a form post
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert_nothing_stored()


def test_json_with_a_charset_is_accepted(client, import_root):
    response = post(client, {"path": "sample"}, "application/json; charset=utf-8")
    assert response.status_code == 202


def test_a_token_request_needs_no_csrf_token(import_root, ada_token):
    from django.test import Client

    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {ada_token}")
    assert post(client, {"path": "sample"}).status_code == 202


def test_a_session_request_needs_the_csrf_token(import_root, ada):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ada)
    response = post(browser, {"path": "sample"})
    assert response.status_code == 403
    assert_nothing_stored()
    page = browser.get(URL, {"format": "html"})  # the page that posts, with its token
    token = page.context["csrf_token"]
    response = browser.post(
        URL,
        data=json.dumps({"path": "sample"}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=str(token),
    )
    assert response.status_code == 202


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_are_405(client, import_root, method):
    response = getattr(client, method)(URL)
    assert response.status_code == 405
    assert "POST" in response["Allow"]


def test_detail_refuses_post(client, import_root):
    item = Import.objects.create(path="/x", requested_path="x", root="/", email="a@b.org")
    response = client.post(item.get_absolute_url(), {})
    assert response.status_code == 405
    assert Import.objects.count() == 1


def make_imports(count: int, requester=None) -> list[Import]:
    from django.contrib.auth.models import User

    requester = requester or User.objects.get(username="ada")
    return [
        Import.objects.create(
            requester=requester,
            path=f"/root/p{n}",
            requested_path=f"p{n}",
            root="/root",
            email=requester.email,
        )
        for n in range(count)
    ]


def test_status_is_json_by_default(client, import_root):
    (item,) = make_imports(1)
    response = client.get(item.get_absolute_url())
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(item.pk)
    assert body["status"] == "pending"
    assert body["attempts"] == 0
    assert body["finished_at"] is None
    assert body["files"] == []


def test_status_shows_the_outcome_and_files(client, import_root):
    from project.imports import outcomes
    from project.imports.importer import FileRecord

    (item,) = make_imports(1)
    outcomes.record_success(item.pk, [FileRecord("a.txt", 3, "ab" * 32)], attempts=2)
    body = client.get(item.get_absolute_url(), HTTP_ACCEPT="application/json").json()
    assert body["status"] == "succeeded"
    assert body["attempts"] == 2
    assert (body["file_count"], body["total_bytes"]) == (1, 3)
    assert body["files"] == [{"path": "a.txt", "size": 3, "sha256": "ab" * 32}]
    assert body["finished_at"] is not None


@pytest.mark.parametrize(
    ("accept", "query", "html"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", "", True),
        ("application/json", "", False),
        ("*/*", "", False),
        ("application/json", "?format=html", True),
        ("text/html", "?format=json", False),
    ],
)
def test_status_negotiates_html_or_json(client, import_root, accept, query, html):
    (item,) = make_imports(1)
    response = client.get(item.get_absolute_url() + query, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html" if html else "application/json")
    if html:
        assert str(item.pk) in response.content.decode()


def test_an_unknown_import_is_404(client, import_root):
    assert client.get(f"/imports/{uuid.uuid4()}/").status_code == 404


def test_the_list_is_newest_first_and_paginated(client, import_root):
    items = make_imports(25)
    first = client.get(URL).json()
    assert (first["count"], first["page"], first["pages"]) == (25, 1, 2)
    assert [r["id"] for r in first["results"]] == [str(i.pk) for i in reversed(items[5:])]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [str(i.pk) for i in reversed(items[:5])]
    assert second["next"] is None
    small = client.get(URL, {"per_page": 10, "page": 3}).json()
    assert (small["pages"], len(small["results"])) == (3, 5)
    assert client.get(URL, {"page": 99}).json()["page"] == 2


def test_the_list_has_an_html_page(client, import_root):
    make_imports(3)
    response = client.get(URL, {"format": "html"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "3 imports" in page
    assert "p2" in page


def test_the_welcome_page_lists_the_urls(client, import_root):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    for text in (reverse("imports:list"), reverse("admin:index"), "curl", "Bearer"):
        assert text in page
    assert str(import_root) not in page  # the server's paths are for staff


@pytest.mark.parametrize(
    "body",
    [
        {"path": "x" * 300},
        {"path": "sample/" + "y" * 256},
        {"path": "/".join(["d" * 200] * 25)},
        {"path": "sample", "email": "a" * 300 + "@example.org"},
        {"path": "sample", "options": {"include": "a\x00b"}},
        {"path": "sample", "options": {"max_files": 10**40}},
        b'{"path": "sample", "options": {"max_files": ' + b"9" * 5000 + b"}}",
        b'{"path": "sample", "options": {"include": "\\ud800"}}',
        b'{"path": "\\udcff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"path": "sample", "options": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
    ],
)
def test_hostile_requests_are_4xx_not_500(client, import_root, body):
    response = post(client, body)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]
    assert_nothing_stored()


def test_an_account_address_longer_than_the_column_is_refused(import_root, django_user_model):
    from django.test import Client

    user = django_user_model(username="long", email="a" * 250 + "@example.org")
    if connection_is_postgres():  # the column itself refuses it: no such requester can exist
        from django.db import DataError, transaction

        with pytest.raises(DataError), transaction.atomic():
            user.save()
        return
    user.save()
    browser = Client()
    browser.force_login(user)
    response = post(browser, {"path": "sample"})
    assert response.status_code == 400
    assert_nothing_stored()


def connection_is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"
