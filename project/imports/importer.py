"""Importers: the pluggable code that does an import's work.

``settings.IMPORT_IMPORTER`` names the class (a dotted path); the default,
``FilesystemImporter``, walks the files under the requested path and
records each one's name, size and SHA-256 checksum. An importer signals
how it failed by the exception it raises: ``TransientImportError`` is
retried on ``settings.IMPORT_RETRY``, ``PermanentImportError`` ends the
import at once. Any other exception counts as transient.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

CHUNK = 1024 * 1024
# Open without following a symbolic link, and without blocking on a FIFO or a device:
# what is opened is checked on the handle (fstat), so a file swapped after the walk
# listed it is never read unless it is still a regular file.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
NOT_A_FILE = (errno.ELOOP, errno.ENXIO, errno.EMLINK, errno.EOPNOTSUPP)  # symlink, socket …
DEFAULT_IMPORTER = "project.imports.importer.FilesystemImporter"


class ImportFailed(Exception):
    """Base class of the errors an importer raises."""


class TransientImportError(ImportFailed):
    """The import may succeed later (a file is busy, an I/O error): retry it."""


class PermanentImportError(ImportFailed):
    """The import cannot succeed (the path vanished, is unreadable): stop now."""


class ImporterNotFound(ImproperlyConfigured):
    """``settings.IMPORT_IMPORTER`` does not name an importer class."""


@dataclass(frozen=True)
class ImportJob:
    """What an importer is asked to do: one attempt at one import."""

    import_id: str
    source: Path
    roots: tuple[Path, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    #: ``progress(done, total, note)``: report how far the import got (cheap: call it per
    #: chunk). The consumer passes kew_django's ``Work.progress``, which raises
    #: ``kew_django.Cancelled`` once the import is to stop: let it propagate.
    progress: Callable[[int | None, int | None, str], None] = field(
        default=lambda done, total, note: None, compare=False
    )


def no_progress(done: int | None, total: int | None, note: str) -> None:
    """Report progress to nobody (an import run without a ``Work``)."""


@dataclass(frozen=True)
class FileRecord:
    """A file an import found."""

    path: str
    size: int
    sha256: str


class Importer:
    """Base class: validate options at request time, then run jobs in the consumer."""

    #: Option names the importer accepts in a request's ``options``.
    option_names: frozenset[str] = frozenset()

    def clean_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Return the options to store, or raise ValueError saying what is wrong."""
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            accepted = ", ".join(sorted(self.option_names)) or "none"
            raise ValueError(f"unknown option(s) {', '.join(unknown)} (accepted: {accepted})")
        return dict(options)

    def run(self, job: ImportJob) -> list[FileRecord]:
        """Do the import; return the files imported, or raise an ImportFailed."""
        raise NotImplementedError


class FilesystemImporter(Importer):
    """Walk the source (a file or a directory tree) and checksum every regular file.

    Options: ``include``, a glob matched against each file's path relative
    to the source (e.g. ``"*.csv"``); ``max_files``, a limit beyond which
    the import fails permanently. Symbolic links are not followed.
    """

    option_names = frozenset({"include", "max_files"})

    def clean_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = super().clean_options(options)
        include = cleaned.get("include")
        if include is not None and (not isinstance(include, str) or not include):
            raise ValueError("option 'include' must be a non-empty glob string, e.g. '*.csv'")
        limit = cleaned.get("max_files")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ValueError("option 'max_files' must be a positive integer")
        return cleaned

    def run(self, job: ImportJob) -> list[FileRecord]:
        """Checksum every file, reporting progress in bytes (and which file) as it goes."""
        source = self.check_source(job)
        include = job.options.get("include")
        limit = job.options.get("max_files")
        records: list[FileRecord] = []
        try:
            count, total = self.measure(source, include)
            meter = Meter(job.progress, total, count)
            for opener, relative in self.walk(source):
                shown = display_name(relative)
                if include and not fnmatch.fnmatch(shown, include):
                    continue
                if limit is not None and len(records) >= limit:
                    raise PermanentImportError(f"more than {limit} files under {source}")
                meter.next_file(shown)
                self.before_file(job, meter)
                record = self.record(opener, shown, meter)
                if record is not None:
                    records.append(record)
            meter.report()
        except OSError as error:  # from walking the tree
            raise classify(error, display_name(str(error.filename or source))) from error
        return records

    def measure(self, source: Path, include: str | None) -> tuple[int, int]:
        """Return how many regular files and bytes the import will read (for its progress)."""
        count = total = 0
        for opener, relative in self.walk(source):
            if include and not fnmatch.fnmatch(display_name(relative), include):
                continue
            try:
                info = os.stat(opener.name, dir_fd=opener.dir_fd, follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile: the import pass says what became of it
            if stat.S_ISREG(info.st_mode):
                count, total = count + 1, total + info.st_size
        return count, total

    def before_file(self, job: ImportJob, meter: Meter) -> None:
        """Hook run before each file is read (the scripted test importer waits here)."""

    def check_source(self, job: ImportJob) -> Path:
        """Return the source, resolved again: it may have moved since it was requested."""
        source = job.source.resolve()
        if not any(source.is_relative_to(root.resolve()) for root in job.roots):
            raise PermanentImportError(f"{job.source} now lies outside the import roots")
        if not source.exists():
            raise PermanentImportError(f"{job.source} has vanished")
        if not os.access(source, os.R_OK):
            raise PermanentImportError(f"{job.source} is not readable")
        return source

    def walk(self, source: Path) -> Iterator[tuple[Opener, str]]:
        """Yield how to open each entry under ``source`` that is not a directory, and its path.

        Directories are walked by handle (``os.fwalk``), so a directory
        swapped for a symbolic link is not followed either. The relative
        path is the file system's (perhaps with undecodable bytes as
        surrogates); ``display_name`` makes it storable.
        """
        if not source.is_dir():
            yield Opener(str(source), None), source.name
            return

        def fail(error: OSError) -> None:
            raise error

        for folder, dirs, files, dir_fd in os.fwalk(source, onerror=fail):
            dirs.sort()
            for name in sorted(files):
                relative = Path(folder, name).relative_to(source).as_posix()
                yield Opener(name, dir_fd), relative

    def record(self, opener: Opener, shown: str, meter: Meter | None = None) -> FileRecord | None:
        """Checksum one entry if it is a regular file (else None); OS errors become ImportFailed."""
        try:
            fd = opener.open()
        except OSError as error:
            if error.errno in NOT_A_FILE:
                return None  # a symbolic link, a socket: not imported
            raise classify(error, shown) from error
        try:
            with os.fdopen(fd, "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    return None  # a FIFO, a device, a directory swapped in meanwhile
                digest = hashlib.sha256()
                size = 0
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if meter is not None:
                        meter.add(len(chunk))
        except OSError as error:
            raise classify(error, shown) from error
        return FileRecord(shown, size, digest.hexdigest())


class Meter:
    """Count the bytes and files an import has read, and report them through ``progress``."""

    def __init__(
        self, progress: Callable[[int | None, int | None, str], None], total: int, files: int
    ):
        self.progress = progress
        self.total = total
        self.files = files
        self.done = 0
        self.file = 0
        self.name = ""

    def next_file(self, name: str) -> None:
        """Start the next file; report."""
        self.file += 1
        self.name = name
        self.report()

    def add(self, size: int) -> None:
        """Count ``size`` more bytes read; report."""
        self.done += size
        self.report()

    def report(self) -> None:
        """Report bytes done of the total, and which file of how many."""
        total = max(self.total, self.done)
        note = f"file {self.file} of {max(self.files, self.file)}: {self.name}" if self.name else ""
        self.progress(self.done, total, note)


@dataclass(frozen=True)
class Opener:
    """How to open one entry: its name, relative to a directory handle (or a whole path)."""

    name: str
    dir_fd: int | None

    def open(self) -> int:
        """Open the entry for reading, never following a link nor blocking; return the fd."""
        return os.open(self.name, OPEN_FLAGS, dir_fd=self.dir_fd)


def display_name(name: str) -> str:
    """Return a file name as storable, displayable text.

    Bytes that are not UTF-8 (decoded by the file system as surrogates)
    and control characters become backslash escapes: ``caf\\xe9.txt``.
    """
    text = os.fsencode(name).decode("utf-8", errors="backslashreplace")
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def classify(error: OSError, what: str) -> ImportFailed:
    """Return the import error an OS error stands for: unreadable is permanent."""
    if isinstance(error, PermissionError) or error.errno in (errno.EACCES, errno.EPERM):
        return PermanentImportError(f"{what} is not readable: {error.strerror}")
    return TransientImportError(f"{what}: {error.strerror or error}")


def get_importer() -> Importer:
    """Return an instance of the importer class named by ``settings.IMPORT_IMPORTER``."""
    dotted = getattr(settings, "IMPORT_IMPORTER", DEFAULT_IMPORTER)
    try:
        cls = import_string(dotted)
    except ImportError as error:
        raise ImporterNotFound(
            f"IMPORT_IMPORTER = {dotted!r} cannot be imported: {error}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Importer)):
        raise ImporterNotFound(f"IMPORT_IMPORTER = {dotted!r} is not an Importer subclass")
    return cls()


def import_roots() -> tuple[Path, ...]:
    """Return the configured import roots, resolved (symlinks and '..' removed)."""
    return tuple(Path(root).expanduser().resolve() for root in settings.IMPORT_ROOTS)
