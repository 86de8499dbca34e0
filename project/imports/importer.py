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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

CHUNK = 1024 * 1024
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
        source = self.check_source(job)
        include = job.options.get("include")
        limit = job.options.get("max_files")
        records = []
        try:
            for path, relative in self.walk(source):
                if include and not fnmatch.fnmatch(relative, include):
                    continue
                if limit is not None and len(records) >= limit:
                    raise PermanentImportError(f"more than {limit} files under {source}")
                records.append(self.record(path, relative))
        except OSError as error:  # from walking the tree
            raise classify(error, error.filename or str(source)) from error
        return records

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

    def walk(self, source: Path) -> Iterator[tuple[Path, str]]:
        """Yield each regular file under ``source`` and its relative path, in a stable order."""
        if source.is_file():
            yield source, source.name
            return

        def fail(error: OSError) -> None:
            raise error

        for folder, dirs, files in os.walk(source, onerror=fail):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                if path.is_symlink() or not path.is_file():
                    continue
                yield path, path.relative_to(source).as_posix()

    def record(self, path: Path, relative: str) -> FileRecord:
        """Checksum one file, turning OS errors into import errors."""
        try:
            digest = hashlib.sha256()
            size = 0
            with path.open("rb") as stream:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as error:
            raise classify(error, relative) from error
        return FileRecord(relative, size, digest.hexdigest())


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
