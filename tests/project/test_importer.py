"""The filesystem importer really walks and checksums; errors are transient or permanent."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest

from project.imports.importer import (
    FilesystemImporter,
    ImporterNotFound,
    ImportJob,
    Opener,
    PermanentImportError,
    TransientImportError,
    classify,
    get_importer,
)
from project.imports.samples import sample_files
from project.imports.testing import ScriptedImporter


def job(source: Path, root: Path, **options) -> ImportJob:
    return ImportJob(import_id="test", source=source, roots=(root,), options=options)


def test_walks_every_file_with_size_and_checksum(import_root):
    records = FilesystemImporter().run(job(import_root / "sample", import_root))
    expected = sample_files()
    assert sorted(r.path for r in records) == sorted(expected)
    for record in records:
        content = expected[record.path]
        assert record.size == len(content)
        assert record.sha256 == hashlib.sha256(content).hexdigest()


def test_a_single_file_can_be_imported(import_root):
    (record,) = FilesystemImporter().run(job(import_root / "single.txt", import_root))
    assert (record.path, record.size) == ("single.txt", 9)


def test_include_filters_by_glob(import_root):
    records = FilesystemImporter().run(job(import_root / "sample", import_root, include="*.csv"))
    assert [r.path for r in records] == ["plates/plate-01.csv", "plates/plate-02.csv"]


def test_too_many_files_is_permanent(import_root):
    with pytest.raises(PermanentImportError, match="more than 2 files"):
        FilesystemImporter().run(job(import_root / "sample", import_root, max_files=2))


def test_symlinks_are_not_followed(import_root, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    (import_root / "sample" / "leak.txt").symlink_to(tmp_path / "outside.txt")
    records = FilesystemImporter().run(job(import_root / "sample", import_root))
    assert "leak.txt" not in [r.path for r in records]


class SwappingImporter(FilesystemImporter):
    """Swap a folder above the source for a link out of the root once the source is checked."""

    def __init__(self, swap):
        self.swap = swap

    def measure(self, *args, **kwargs):
        counted = super().measure(*args, **kwargs)
        self.swap()
        return counted


def test_a_folder_above_the_source_swapped_for_a_link_leads_nowhere_outside(import_root, tmp_path):
    (import_root / "lab" / "run").mkdir(parents=True)
    (import_root / "lab" / "run" / "image.tif").write_bytes(b"pixels")
    (tmp_path / "outside" / "run").mkdir(parents=True)
    (tmp_path / "outside" / "run" / "secret.txt").write_text("secret")

    def swap():
        (import_root / "lab").rename(import_root / "lab-moved")
        (import_root / "lab").symlink_to(tmp_path / "outside")

    importer = SwappingImporter(swap)
    records = importer.run(job(import_root / "lab" / "run", import_root))
    assert [r.path for r in records] == ["image.tif"]  # the folder that was checked, by handle


def test_a_source_swapped_for_a_link_before_its_folders_are_opened_fails(import_root, tmp_path):
    (import_root / "lab" / "run").mkdir(parents=True)
    (tmp_path / "outside" / "run").mkdir(parents=True)
    (tmp_path / "outside" / "run" / "secret.txt").write_text("secret")
    importer = FilesystemImporter()
    checked = importer.check_source(job(import_root / "lab" / "run", import_root))
    (import_root / "lab").rename(import_root / "lab-moved")
    (import_root / "lab").symlink_to(tmp_path / "outside")
    importer.check_source = lambda job: checked  # the check ran before the swap
    with pytest.raises((PermanentImportError, TransientImportError)):
        importer.run(job(import_root / "lab" / "run", import_root))


def test_imports_are_bounded_by_the_setting_and_options_cannot_raise_it(import_root, settings):
    settings.IMPORT_MAX_FILES = 2
    with pytest.raises(PermanentImportError, match="more than 2 files"):
        FilesystemImporter().run(job(import_root / "sample", import_root))
    with pytest.raises(ValueError, match="at most 2"):
        FilesystemImporter().clean_options({"max_files": 3})


def test_a_vanished_source_is_permanent(import_root):
    with pytest.raises(PermanentImportError, match="vanished"):
        FilesystemImporter().run(job(import_root / "gone", import_root))


def test_a_source_moved_out_of_the_roots_is_permanent(import_root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (import_root / "moved").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PermanentImportError, match="outside the import roots"):
        FilesystemImporter().run(job(import_root / "moved", import_root))


def test_os_errors_are_classified():
    assert isinstance(classify(PermissionError(errno.EACCES, "denied"), "f"), PermanentImportError)
    assert isinstance(classify(OSError(errno.EIO, "I/O error"), "f"), TransientImportError)
    assert isinstance(classify(OSError(errno.EBUSY, "busy"), "f"), TransientImportError)


def test_an_io_error_while_reading_is_transient(import_root, monkeypatch):
    def broken_open(self, *args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(Opener, "open", broken_open)
    with pytest.raises(TransientImportError, match="Input/output error"):
        FilesystemImporter().run(job(import_root / "single.txt", import_root))


def test_the_importer_comes_from_settings(settings):
    assert type(get_importer()) is FilesystemImporter
    settings.IMPORT_IMPORTER = "project.imports.testing.ScriptedImporter"
    assert type(get_importer()) is ScriptedImporter


@pytest.mark.parametrize("path", ["no.such.Importer", "project.imports.models.Import"])
def test_a_bad_importer_setting_is_named(settings, path):
    settings.IMPORT_IMPORTER = path
    with pytest.raises(ImporterNotFound, match="IMPORT_IMPORTER"):
        get_importer()


def test_the_scripted_importer_follows_the_name(import_root):
    for name in ("transient-2", "permanent", "fine"):
        (import_root / name).mkdir()
        (import_root / name / "f.txt").write_text(name)
    importer = ScriptedImporter()

    def attempt(name: str, number: int):
        return importer.run(ImportJob("t", import_root / name, (import_root,), attempt=number))

    assert len(attempt("fine", 1)) == 1
    with pytest.raises(PermanentImportError):
        attempt("permanent", 1)
    for number in (1, 2):
        with pytest.raises(TransientImportError):
            attempt("transient-2", number)
    assert len(attempt("transient-2", 3)) == 1


def test_a_file_name_that_is_not_utf8_is_recorded_escaped(import_root):
    folder = import_root / "latin1"
    folder.mkdir()
    (Path(os.fsdecode(bytes(folder) + b"/caf\xe9.txt"))).write_bytes(b"coffee")
    (folder / "line\nbreak.txt").write_bytes(b"x")
    records = {r.path: r for r in FilesystemImporter().run(job(folder, import_root))}
    assert set(records) == {"caf\\xe9.txt", "line\\nbreak.txt"}
    assert records["caf\\xe9.txt"].sha256 == hashlib.sha256(b"coffee").hexdigest()
    for name in records:
        name.encode("utf-8")  # storable: no surrogates, no control characters


@pytest.mark.django_db
def test_an_import_with_a_non_utf8_name_succeeds_end_to_end(import_root, ada):
    from project.imports import outcomes
    from project.imports.models import Import

    folder = import_root / "mixed"
    folder.mkdir()
    Path(os.fsdecode(bytes(folder) + b"/\xff\xfe.bin")).write_bytes(b"odd")
    item = Import.objects.create(
        requester=ada,
        path=str(folder),
        requested_path="mixed",
        root=str(import_root),
        email=ada.email,
    )
    files = FilesystemImporter().run(job(folder, import_root))
    outcomes.record_success(item.pk, files, attempts=1)
    item.refresh_from_db()
    assert (item.status, item.file_count) == ("succeeded", 1)
    assert item.files.get().path == "\\xff\\xfe.bin"


def swap_in(path: Path, make) -> None:
    """Replace ``path`` by what ``make(path)`` creates: a race won by the attacker."""
    path.unlink()
    make(path)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: p.symlink_to("/etc/hostname"), id="symlink"),
        pytest.param(lambda p: os.mkfifo(p), id="fifo"),
    ],
)
def test_a_file_swapped_after_the_walk_is_skipped_not_read(import_root, monkeypatch, make):
    folder = import_root / "race"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "victim").write_text("regular when listed")
    importer = FilesystemImporter()
    original = importer.walk

    def walk_then_swap(source):
        for entry in original(source):
            if entry[1] == "victim":
                swap_in(folder / "victim", make)
            yield entry

    monkeypatch.setattr(importer, "walk", walk_then_swap)
    done = {}

    def run() -> None:
        done["records"] = importer.run(job(folder, import_root))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the importer hangs on a FIFO"
    assert [r.path for r in done["records"]] == ["a.txt"]
