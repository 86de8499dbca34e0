"""Fixtures of the reference application's tests: an import root with data in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from project.imports.samples import create_sample


@pytest.fixture
def import_root(tmp_path: Path, settings) -> Path:
    """An import root (the only one configured) holding the sample data set and a file."""
    root = (tmp_path / "root").resolve()
    root.mkdir()
    create_sample(root)
    (root / "single.txt").write_text("one file\n")
    settings.IMPORT_ROOTS = [str(root)]
    settings.IMPORT_USER_FOLDERS = False  # one shared root (test_user_folders.py: per user)
    return root


@pytest.fixture
def scripted(settings) -> None:
    """Use the scripted importer, whose behaviour the path name picks."""
    settings.IMPORT_IMPORTER = "project.imports.testing.ScriptedImporter"


@pytest.fixture
def ada(db, django_user_model):
    """A user (not staff) with an e-mail address; no password (hashing one is slow)."""
    return django_user_model.objects.create_user("ada", email="ada@example.org", password=None)


@pytest.fixture
def ada_token(ada) -> str:
    """An API token of ada's."""
    from project.imports.models import ApiToken

    return ApiToken.create(ada, "tests")[1]
