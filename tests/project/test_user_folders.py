"""Per-user import folders: each user imports only from <root>/<username>/ of each root."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from project.imports.importer import user_roots
from project.imports.models import ApiToken, Import
from project.imports.samples import create_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(tmp_path, settings):
    root = (tmp_path / "root").resolve()
    for user in ("ada", "grace"):
        create_sample(root / user, f"{user}-data")
    create_sample(root, "shared")
    settings.IMPORT_ROOTS = [str(root)]
    settings.IMPORT_USER_FOLDERS = True
    return root


def request(django_user_model, username: str, path: str):
    user = django_user_model.objects.create_user(username, email=f"{username}@example.org")
    _, key = ApiToken.create(user, "t")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = json.dumps({"path": path})
    return client.post("/imports/", data=body, content_type="application/json")


def test_a_user_imports_from_their_own_folder(roots, django_user_model):
    response = request(django_user_model, "ada", "ada-data")
    assert response.status_code == 202, response.json()
    item = Import.objects.get()
    assert (item.root, item.requested_path) == (str(roots / "ada"), "ada-data")


@pytest.mark.parametrize("path", ["grace-data", "../grace/grace-data", "../shared", "shared"])
def test_another_users_folder_and_the_shared_root_are_out_of_reach(roots, django_user_model, path):
    response = request(django_user_model, "ada", path)
    assert response.status_code == 400
    assert not Import.objects.exists()


def test_an_absolute_path_into_another_users_folder_is_refused(roots, django_user_model):
    response = request(django_user_model, "ada", str(roots / "grace" / "grace-data"))
    assert response.status_code == 400
    assert not Import.objects.exists()


def test_a_user_without_a_folder_can_import_nothing(roots, django_user_model):
    response = request(django_user_model, "lin", "shared")
    assert response.status_code == 400
    assert response.json()["error"] == "you have no import folder yet"
    assert "your user name" in response.json()["fields"]["path"]


@pytest.mark.parametrize("name", [".", "..", "", None])
def test_names_that_are_not_folders_have_no_roots(roots, name):
    assert user_roots(name) == ()


def test_without_user_folders_every_user_shares_the_roots(roots, settings):
    settings.IMPORT_USER_FOLDERS = False
    assert user_roots("ada") == (roots,)


def test_create_import_root_puts_the_sample_in_a_users_folder(tmp_path, settings, capsys):
    settings.IMPORT_ROOTS = [str(tmp_path / "r")]
    settings.IMPORT_USER_FOLDERS = True
    call_command("create_import_root", "--user", "demo")
    assert (tmp_path / "r" / "demo" / "sample" / "README.txt").is_file()
