"""Validate an import request: JSON shape, options, and a path inside an import root.

The request names a path and, optionally, importer options. Whom to tell
is not part of it: the outcome goes to the authenticated user's address.
Every check runs before anything touches the database, so that a bad
request is a 400 that names each bad field and never a 500: text the
database cannot store (NUL, lone surrogates), JSON nested too deeply or
with integers beyond Python's digit limit, names longer than a file system
allows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from project.imports.importer import Importer

FIELDS = frozenset({"path", "options"})
MAX_PATH = 4096  # characters in a requested path (and the model's column)
MAX_NAME = 255  # bytes in one path component (NAME_MAX on Linux and macOS)
MAX_EMAIL = 254  # characters in an address (the model's column)
MAX_OPTIONS_DEPTH = 16
MAX_INT = 2**63 - 1  # the widest integer every database stores in JSON
OUTSIDE = "lies outside the import roots"


class InvalidRequest(Exception):
    """The request cannot be accepted; ``errors`` maps each bad field to what is wrong."""

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}

    def as_json(self) -> dict[str, Any]:
        """Return the body of the 400 response."""
        body: dict[str, Any] = {"error": self.message}
        if self.errors:
            body["fields"] = self.errors
        return body


@dataclass(frozen=True)
class ImportSpec:
    """A valid import request: the source, its root, and its path relative to the root."""

    path: Path
    root: Path
    relative_path: str  # normalised, e.g. "sample/plates": what is stored, shown and mailed
    options: dict[str, Any] = field(default_factory=dict)


def parse_import_request(body: bytes, *, roots: Sequence[Path], importer: Importer) -> ImportSpec:
    """Return the request in ``body`` (JSON) if it is valid; raise InvalidRequest if not."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object with 'path'")
    errors = {name: "unknown field" for name in sorted(set(data) - FIELDS - {"email"})}
    if "email" in data:
        errors["email"] = "not accepted: the outcome is e-mailed to your account's address"
    located = None
    if "path" not in data:
        errors["path"] = "this field is required"
    else:
        try:
            located = resolve_path(data["path"], roots)
        except ValueError as error:
            errors["path"] = str(error)
    options = data.get("options", {})
    try:
        check_options(options)
        options = importer.clean_options(options)
    except ValueError as error:
        errors["options"] = str(error)
    if errors or located is None:
        raise InvalidRequest("the import request is invalid", errors)
    path, root = located
    return ImportSpec(path, root, relative_to_root(path, root), options)


def parse_json(body: bytes) -> Any:
    """Return the JSON value in ``body``; raise InvalidRequest for anything else.

    NaN and Infinity are refused (they are not JSON, and PostgreSQL will
    not store them); so are nesting deeper than the parser can follow and
    integers beyond Python's digit limit.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidRequest("the body is not valid JSON: it is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}") from None
    except ValueError as error:  # an integer past the digit limit, or NaN
        raise InvalidRequest(f"the body is not valid JSON: {error}") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def check_options(options: object, depth: int = 0) -> None:
    """Raise ValueError unless ``options`` is a JSON object every database can store."""
    if depth == 0 and not isinstance(options, dict):
        raise ValueError("must be a JSON object")
    if depth > MAX_OPTIONS_DEPTH:
        raise ValueError(f"are nested more than {MAX_OPTIONS_DEPTH} levels deep")
    if isinstance(options, dict):
        for key, value in options.items():
            if not storable_text(key):
                raise ValueError(f"option name {key!r} has characters that cannot be stored")
            check_options(value, depth + 1)
    elif isinstance(options, list):
        for value in options:
            check_options(value, depth + 1)
    elif isinstance(options, str) and not storable_text(options):
        raise ValueError("a text value has characters that cannot be stored (NUL, surrogates)")
    elif isinstance(options, int) and not isinstance(options, bool) and abs(options) > MAX_INT:
        raise ValueError(f"integers must lie between -{MAX_INT} and {MAX_INT}")
    elif isinstance(options, float) and not math.isfinite(options):
        raise ValueError("numbers must be finite")


def storable_text(text: str) -> bool:
    """Return whether ``text`` has no NUL and encodes as UTF-8 (no lone surrogates)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_email(value: object) -> str:
    """Return the e-mail address, or raise ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be an e-mail address, e.g. "ada@example.org"')
    value = value.strip()
    if len(value) > MAX_EMAIL:
        raise ValueError(f"is longer than {MAX_EMAIL} characters")
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not a valid e-mail address") from None
    return value


def resolve_path(value: object, roots: Sequence[Path]) -> tuple[Path, Path]:
    """Return ``(resolved path, its root)`` for an existing path inside an import root.

    ``roots`` must be resolved already (see ``importer.import_roots``). A
    relative path is looked up in each root in turn; an absolute one must
    lie in a root. A path that leaves the roots by its text alone (``..``,
    an absolute path elsewhere) is refused before the file system is
    touched, so the answer is the same whatever exists out there; one that
    leaves them by a symbolic link is refused after resolving it. Raise
    ValueError saying what is wrong.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string: a path relative to an import root")
    if not storable_text(value) or len(value) > MAX_PATH:
        raise ValueError("is not a usable path")
    if any(len(part.encode()) > MAX_NAME for part in value.split("/")):
        raise ValueError(f"has a name longer than {MAX_NAME} bytes")
    if not roots:
        raise ValueError("no import roots are configured (settings.IMPORT_ROOTS)")
    raw = Path(value)
    normal = Path(os.path.normpath(raw))
    if raw.is_absolute():
        if not any(normal.is_relative_to(root) for root in roots):
            raise ValueError(f"{value!r} {OUTSIDE}")
        candidates = [raw]
    else:
        if normal.parts[:1] == ("..",):
            raise ValueError(f"{value!r} {OUTSIDE}")
        candidates = [root / raw for root in roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
            root = next((r for r in roots if resolved.is_relative_to(r)), None)
            if root is None:  # by a symbolic link inside a root: refuse it outright
                raise ValueError(f"{value!r} {OUTSIDE}")
            if resolved.exists():
                if not storable_text(str(resolved)):
                    raise ValueError("is not a usable path")
                return resolved, root
        except (OSError, RuntimeError):  # a symlink loop, a path too long for the system
            raise ValueError(f"{value!r} cannot be resolved") from None
    raise ValueError(f"{value!r} does not exist in any import root")


def relative_to_root(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root``, normalised, as stored and shown ("." for the root)."""
    return path.relative_to(root).as_posix()
