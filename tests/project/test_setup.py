"""Setting up: the import root command, the sample data set, and the system checks."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from project.imports.checks import check_import_settings
from project.imports.samples import sample_files


def test_create_import_root_makes_the_roots_and_a_sample(tmp_path, settings):
    first, second = tmp_path / "one", tmp_path / "deep" / "two"
    settings.IMPORT_ROOTS = [str(first), str(second)]
    out = StringIO()
    call_command("create_import_root", stdout=out)
    assert first.is_dir() and second.is_dir()
    assert sorted(
        p.relative_to(first / "sample").as_posix() for p in first.rglob("*") if p.is_file()
    ) == sorted(sample_files())
    assert not any(second.iterdir())
    assert 'request it as path "sample"' in out.getvalue()


def test_create_import_root_keeps_what_is_there(tmp_path, settings):
    settings.IMPORT_ROOTS = [str(tmp_path)]
    readme = tmp_path / "sample" / "README.txt"
    readme.parent.mkdir()
    readme.write_text("mine")
    call_command("create_import_root", stdout=StringIO())
    call_command("create_import_root", stdout=StringIO())
    assert readme.read_text() == "mine"


def test_no_sample_only_makes_roots(tmp_path, settings):
    settings.IMPORT_ROOTS = [str(tmp_path / "r")]
    call_command("create_import_root", "--no-sample", stdout=StringIO())
    assert (tmp_path / "r").is_dir() and not any((tmp_path / "r").iterdir())


def ids(settings_problems) -> set[str]:
    return {problem.id for problem in settings_problems}


def test_checks_pass_on_good_settings(import_root):
    assert check_import_settings(None) == []


def test_checks_report_bad_settings(tmp_path, settings):
    settings.IMPORT_ROOTS = [str(tmp_path / "missing")]
    settings.IMPORT_IMPORTER = "nowhere.Importer"
    settings.IMPORT_RETRY = "10 parsecs"
    assert ids(check_import_settings(None)) == {"imports.W001", "imports.E001", "imports.E003"}
    settings.IMPORT_ROOTS = []
    assert "imports.E002" in ids(check_import_settings(None))
