"""Validate an import request: JSON shape, e-mail, options, and a path inside an import root."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from project.imports.importer import Importer

FIELDS = frozenset({"path", "email", "options"})
MAX_PATH = 4096


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
    """A valid import request."""

    requested_path: str
    path: Path
    root: Path
    email: str
    options: dict[str, Any] = field(default_factory=dict)


def parse_import_request(body: bytes, *, roots: Sequence[Path], importer: Importer) -> ImportSpec:
    """Return the request in ``body`` (JSON) if it is valid; raise InvalidRequest if not."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object with 'path' and 'email'")
    errors = {name: "unknown field" for name in sorted(set(data) - FIELDS)}
    for name in ("path", "email"):
        if name not in data:
            errors[name] = "this field is required"
    located = None
    if "path" in data:
        try:
            located = resolve_path(data["path"], roots)
        except ValueError as error:
            errors["path"] = str(error)
    if "email" in data:
        try:
            email = clean_email(data["email"])
        except ValueError as error:
            errors["email"] = str(error)
    options = data.get("options", {})
    if not isinstance(options, dict):
        errors["options"] = "must be a JSON object"
    else:
        try:
            options = importer.clean_options(options)
        except ValueError as error:
            errors["options"] = str(error)
    if errors:
        raise InvalidRequest("the import request is invalid", errors)
    path, root = located
    return ImportSpec(data["path"], path, root, email, options)


def clean_email(value: object) -> str:
    """Return the e-mail address, or raise ValueError."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be an e-mail address, e.g. "ada@example.org"')
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError(f"{value!r} is not a valid e-mail address") from None
    return value


def resolve_path(value: object, roots: Sequence[Path]) -> tuple[Path, Path]:
    """Return ``(resolved path, its root)`` for an existing path inside an import root.

    ``roots`` must be resolved already (see ``importer.import_roots``). A
    relative path is looked up in each root in turn; an absolute one must
    lie in a root. Symbolic links and ``..`` are resolved first, so neither
    can lead outside the roots. Raise ValueError saying what is wrong.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string: a path relative to an import root")
    if "\x00" in value or len(value) > MAX_PATH:
        raise ValueError("is not a usable path")
    if not roots:
        raise ValueError("no import roots are configured (settings.IMPORT_ROOTS)")
    raw = Path(value)
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    found = []
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as error:  # a symlink loop, for one
            raise ValueError(f"{value!r} cannot be resolved: {error}") from None
        root = next((r for r in roots if resolved.is_relative_to(r)), None)
        if root is None:  # by '..' or a symlink, in any root: refuse it outright
            raise ValueError(f"{value!r} lies outside the import roots")
        if resolved.exists():
            found.append((resolved, root))
    if not found:
        raise ValueError(f"{value!r} does not exist in any import root")
    return found[0]
