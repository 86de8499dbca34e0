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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
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
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
NOT_A_FILE = (errno.ELOOP, errno.ENXIO, errno.EMLINK, errno.EOPNOTSUPP)  # symlink, socket …
DEFAULT_IMPORTER = "project.imports.importer.FilesystemImporter"
DEFAULT_MAX_FILES = 100_000  # settings.IMPORT_MAX_FILES: no import finds more


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
    the import fails permanently (never above ``settings.IMPORT_MAX_FILES``).
    Symbolic links are not followed, on the way to the source nor under it.
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
        if limit is not None and limit > max_files():
            raise ValueError(f"option 'max_files' may be at most {max_files()}")
        return cleaned

    def run(self, job: ImportJob) -> list[FileRecord]:
        """Checksum every file, reporting progress in bytes (and which file) as it goes."""
        source = self.check_source(job)
        include = job.options.get("include")
        limit = min(job.options.get("max_files") or max_files(), max_files())
        records: list[FileRecord] = []
        try:
            with opened_source(source, job.roots) as top:
                count, total = self.measure(top, include)
                meter = Meter(job.progress, total, count)
                for opener, relative in self.walk(top):
                    shown = display_name(relative)
                    if include and not fnmatch.fnmatch(shown, include):
                        continue
                    if len(records) >= limit:
                        raise PermanentImportError(f"more than {limit} files under {source}")
                    meter.next_file(shown)
                    self.before_file(job, meter)
                    record = self.record(opener, shown, meter)
                    if record is not None:
                        records.append(record)
                meter.report()
        except OSError as error:  # from opening or walking the tree
            raise classify(error, display_name(str(error.filename or source))) from error
        return records

    def measure(self, top: Opener, include: str | None) -> tuple[int, int]:
        """Return how many regular files and bytes the import will read (for its progress)."""
        count = total = 0
        for opener, relative in self.walk(top):
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

    def walk(self, top: Opener) -> Iterator[tuple[Opener, str]]:
        """Yield how to open each entry under ``top`` that is not a directory, and its path.

        Directories are walked by handle (``os.fwalk`` from ``top``'s
        directory handle), so no directory on the way is looked up by name
        again: one swapped for a symbolic link is not followed. The relative
        path is the file system's (perhaps with undecodable bytes as
        surrogates); ``display_name`` makes it storable.
        """
        info = os.stat(top.name, dir_fd=top.dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            yield top, top.name
            return

        def fail(error: OSError) -> None:
            raise error

        for folder, dirs, files, dir_fd in os.fwalk(top.name, dir_fd=top.dir_fd, onerror=fail):
            dirs.sort()
            for name in sorted(files):
                relative = Path(folder, name).relative_to(top.name).as_posix()
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


@contextmanager
def opened_source(source: Path, roots: Iterable[Path]) -> Iterator[Opener]:
    """Open the folders from the source's import root down to it, one handle at a time.

    Each folder is opened relative to the one above it and never through a
    symbolic link, so a folder on the way swapped for a link (after the
    source was checked) cannot lead the import out of its root. Yields the
    source as an ``Opener`` (its name in its folder's handle); the handles
    are closed when the block ends.
    """
    root = next(r.resolve() for r in roots if source.is_relative_to(r.resolve()))
    handles: list[int] = []
    try:
        handles.append(os.open(root, DIRECTORY_FLAGS))
        parts = source.relative_to(root).parts
        for part in parts[:-1]:
            handles.append(os.open(part, DIRECTORY_FLAGS | os.O_NOFOLLOW, dir_fd=handles[-1]))
        yield Opener(parts[-1] if parts else ".", handles[-1])
    finally:
        for handle in handles:
            os.close(handle)


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


def max_files() -> int:
    """Return the most files one import may find (``settings.IMPORT_MAX_FILES``)."""
    return int(getattr(settings, "IMPORT_MAX_FILES", DEFAULT_MAX_FILES))


def import_roots() -> tuple[Path, ...]:
    """Return the configured import roots, resolved (symlinks and '..' removed)."""
    return tuple(Path(root).expanduser().resolve() for root in settings.IMPORT_ROOTS)


def user_roots(username: str | None) -> tuple[Path, ...]:
    """Return the roots a user may import from: their own folder of each root.

    With ``settings.IMPORT_USER_FOLDERS`` (the default) that is
    ``<root>/<username>`` of each import root (none for a user whose name
    is not a plain folder name); without it, the import roots themselves.
    """
    roots = import_roots()
    if not getattr(settings, "IMPORT_USER_FOLDERS", True):
        return roots
    if not username or username in (".", "..") or "/" in username or "\0" in username:
        return ()
    return tuple(root / username for root in roots)
