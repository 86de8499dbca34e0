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
    return root


@pytest.fixture
def scripted(settings) -> None:
    """Use the scripted importer, whose behaviour the path name picks."""
    settings.IMPORT_IMPORTER = "project.imports.testing.ScriptedImporter"
