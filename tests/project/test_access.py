"""Who may import and see what: authenticated users, their own imports, their own address."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from kew_django.models import OutboxMessage, QueuedMessage
from project.imports.models import ApiToken, Import
from project.imports.notifications import build_outcome_email

pytestmark = pytest.mark.django_db
URL = "/imports/"


def post(client: Client, body: object, **headers: str):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


def token_client(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def grace(django_user_model):
    return django_user_model.objects.create_user("grace", email="grace@example.org")


def test_anonymous_requests_are_401_json_and_store_nothing(client, import_root):
    response = post(client, {"path": "sample", "email": "victim@example.org"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "authentication required" in response.json()["error"]
    assert Import.objects.count() == 0 and OutboxMessage.objects.count() == 0
    assert QueuedMessage.objects.count() == 0
    assert client.get(URL).status_code == 401
    assert client.get(URL, HTTP_ACCEPT="text/html").status_code == 302  # to the login page


@pytest.mark.parametrize(
    "header", ["Bearer kew_not-a-token", "Bearer ", "Basic YTpi", "kew_x", "Bearer " + "x" * 500]
)
def test_a_bad_token_is_401(import_root, ada, header):
    response = Client(HTTP_AUTHORIZATION=header).post(
        URL, data=json.dumps({"path": "sample"}), content_type="application/json"
    )
    assert response.status_code == 401
    assert Import.objects.count() == 0


def test_a_token_of_an_inactive_user_is_401(import_root, ada, ada_token):
    ada.is_active = False
    ada.save()
    assert post(token_client(ada_token), {"path": "sample"}).status_code == 401


def test_the_outcome_goes_to_the_requesters_own_address(import_root, ada_token):
    response = post(token_client(ada_token), {"path": "sample"})
    assert response.status_code == 202, response.json()
    item = Import.objects.get()
    assert item.email == "ada@example.org"
    assert build_outcome_email(item).to == ["ada@example.org"]
    assert ApiToken.objects.get().last_used_at is not None


def test_no_other_address_can_be_given(import_root, ada_token):
    response = post(token_client(ada_token), {"path": "sample", "email": "victim@example.org"})
    assert response.status_code == 400
    assert "email" in response.json()["fields"]
    assert Import.objects.count() == 0


def test_a_user_without_an_address_cannot_import(import_root, django_user_model):
    user = django_user_model.objects.create_user("noaddress", email="")
    _, key = ApiToken.create(user, "t")
    response = post(token_client(key), {"path": "sample"})
    assert response.status_code == 400
    assert "e-mail address" in response.json()["error"]
    assert Import.objects.count() == 0


def test_users_see_only_their_own_imports_and_staff_see_all(import_root, ada_token, grace):
    ada = token_client(ada_token)
    _, grace_key = ApiToken.create(grace, "t")
    grace_client = token_client(grace_key)
    mine = post(ada, {"path": "sample"}).json()
    theirs = post(grace_client, {"path": "single.txt"}).json()

    listing = ada.get(URL).json()
    assert [r["id"] for r in listing["results"]] == [mine["id"]]
    assert "grace@example.org" not in json.dumps(listing)
    assert ada.get(f"{URL}{theirs['id']}/").status_code == 404
    assert ada.get(f"{URL}{theirs['id']}/?format=html").status_code == 404
    page = ada.get(URL, {"format": "html"}).content.decode()
    assert "grace@example.org" not in page and "single.txt" not in page

    staff = Client()
    staff.force_login(type(grace).objects.create_user("op", email="op@example.org", is_staff=True))
    assert {r["id"] for r in staff.get(URL).json()["results"]} == {mine["id"], theirs["id"]}
    assert staff.get(f"{URL}{theirs['id']}/").status_code == 200


def test_server_paths_are_not_shown(import_root, ada_token):
    client = token_client(ada_token)
    created = post(client, {"path": str(import_root / "sample")}).json()
    status = client.get(created["status_url"]).json()
    assert status["path"] == "sample"
    assert str(import_root) not in json.dumps(status)
    assert str(import_root) not in json.dumps(client.get(URL).json())
    detail = created["status_url"] + "?format=html"
    pages = [client.get(URL, {"format": "html"}), client.get(detail)]
    for page in pages:
        assert str(import_root) not in page.content.decode()
    assert str(import_root) not in client.get("/").content.decode()


@pytest.mark.parametrize(
    ("requested", "stored"),
    [
        ("Account locked! Log in at https://evil.example/../../sample", "sample"),
        ("sample/./plates/../plates/", "sample/plates"),
        ("./single.txt", "single.txt"),
    ],
)
def test_the_stored_and_mailed_path_is_normalised_relative_to_its_root(
    import_root, ada_token, requested, stored
):
    response = post(token_client(ada_token), {"path": requested})
    assert response.status_code == 202
    item = Import.objects.get()
    assert item.requested_path == stored
    item.status, item.error = "failed", "x"
    message = build_outcome_email(item)
    assert message.subject == f"Import failed: {stored}"
    assert "evil" not in message.body and "Account locked" not in message.body


@pytest.mark.parametrize("exists", [True, False])
def test_a_path_outside_the_roots_gets_the_same_answer_whatever_is_there(
    import_root, ada_token, tmp_path, exists
):
    outside = tmp_path / "elsewhere"
    if exists:
        outside.mkdir()
        (outside / "loop").symlink_to(outside / "loop")
    answers = [
        post(token_client(ada_token), {"path": path}).json()
        for path in (str(outside), str(outside / "loop" / "x"), "../elsewhere", "../elsewhere/loop")
    ]
    reasons = [a["fields"]["path"].split("' ")[-1] for a in answers]
    assert reasons == ["lies outside the import roots"] * 4
    assert Import.objects.count() == 0


def test_the_create_api_token_command_prints_a_working_token(import_root, capsys):
    call_command("create_api_token", "lin", "--email", "lin@example.org", "--name", "cli")
    key = capsys.readouterr().out.strip()
    assert key.startswith("kew_")
    assert not ApiToken.objects.filter(digest=key).exists()  # only its digest is stored
    assert post(token_client(key), {"path": "sample"}).status_code == 202
    assert Import.objects.get().email == "lin@example.org"
    call_command("create_api_token", "lin", "--name", "cli", "--replace")
    new = capsys.readouterr().out.strip()
    assert post(token_client(key), {"path": "sample"}).status_code == 401
    assert post(token_client(new), {"path": "sample"}).status_code == 202


def test_the_admin_creates_a_token_and_shows_it_once(import_root, ada):
    staff = Client()
    staff.force_login(type(ada).objects.create_superuser("root", "root@example.org", None))
    response = staff.post("/admin/imports/apitoken/add/", {"user": ada.pk, "name": "laptop"})
    assert response.status_code == 200
    key = response.context["key"]
    assert key in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.user, token.name) == (ada, "laptop")
    assert key not in staff.get(f"/admin/imports/apitoken/{token.pk}/change/").content.decode()
    assert post(token_client(key), {"path": "sample"}).status_code == 202
    assert len(mail.outbox) == 0
