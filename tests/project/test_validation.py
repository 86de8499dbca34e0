"""Validation of import requests: JSON shape, e-mail, options, paths inside the roots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from project.imports.importer import FilesystemImporter
from project.imports.validation import (
    InvalidRequest,
    clean_email,
    parse_import_request,
    resolve_path,
)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    first, second = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    (first / "data" / "sub").mkdir(parents=True)
    (second / "other").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    return first, second


def parse(body: object, roots) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_import_request(raw, roots=roots, importer=FilesystemImporter())


def test_relative_path_is_found_in_any_root(roots):
    assert resolve_path("data", roots) == (roots[0] / "data", roots[0])
    assert resolve_path("other", roots) == (roots[1] / "other", roots[1])
    assert resolve_path("data/sub/../sub", roots) == (roots[0] / "data" / "sub", roots[0])


def test_absolute_path_must_lie_in_a_root(roots):
    assert resolve_path(str(roots[1] / "other"), roots) == (roots[1] / "other", roots[1])
    with pytest.raises(ValueError, match="outside the import roots"):
        resolve_path(str(roots[0].parent / "secret"), roots)
    with pytest.raises(ValueError, match="outside the import roots"):
        resolve_path("/etc", roots)


@pytest.mark.parametrize("path", ["../secret", "data/../../secret", "../../..", "/"])
def test_dot_dot_cannot_leave_the_roots(roots, path):
    with pytest.raises(ValueError, match="outside the import roots"):
        resolve_path(path, roots)


def test_symlink_out_of_a_root_is_refused(roots):
    (roots[0] / "escape").symlink_to(roots[0].parent / "secret")
    with pytest.raises(ValueError, match="outside the import roots"):
        resolve_path("escape", roots)


def test_symlink_within_the_roots_is_resolved(roots):
    (roots[0] / "link").symlink_to(roots[1] / "other")
    assert resolve_path("link", roots) == (roots[1] / "other", roots[1])


def test_missing_path_is_refused(roots):
    with pytest.raises(ValueError, match="does not exist"):
        resolve_path("nothing-here", roots)


@pytest.mark.parametrize("path", ["", "  ", None, 42, ["data"], "da\x00ta", "x" * 5000])
def test_unusable_path_values_are_refused(roots, path):
    with pytest.raises(ValueError):
        resolve_path(path, roots)


def test_no_roots_means_no_path(roots):
    with pytest.raises(ValueError, match="no import roots"):
        resolve_path("data", ())


@pytest.mark.parametrize(
    "email", ["", "nobody", "a@", "@b.org", None, 7, "a b@c.org", "a" * 250 + "@b.org"]
)
def test_bad_emails_are_refused(email):
    with pytest.raises(ValueError):
        clean_email(email)


def test_email_is_stripped():
    assert clean_email("  ada@example.org ") == "ada@example.org"


def test_a_valid_request_is_parsed(roots):
    spec = parse({"path": "data/sub/..", "options": {"include": "*.csv"}}, roots)
    assert spec.path == roots[0] / "data"
    assert spec.root == roots[0]
    assert spec.relative_path == "data"
    assert spec.options == {"include": "*.csv"}


@pytest.mark.parametrize(
    ("body", "message", "fields"),
    [
        (b"{not json", "not valid JSON", None),
        (b"\xff\xfe", "not valid JSON", None),
        ([1, 2], "JSON object", None),
        ({}, "invalid", {"path": "this field is required"}),
        (
            {"path": "data", "colour": "red"},
            "invalid",
            {"colour": "unknown field"},
        ),
        (
            {"path": "data", "options": []},
            "invalid",
            {"options": "must be a JSON object"},
        ),
    ],
)
def test_invalid_requests_say_what_is_wrong(roots, body, message, fields):
    with pytest.raises(InvalidRequest, match=message) as caught:
        parse(body, roots)
    if fields is not None:
        assert caught.value.errors == fields


def test_every_bad_field_is_reported_at_once(roots):
    with pytest.raises(InvalidRequest) as caught:
        parse({"path": "../secret", "email": "nope", "options": {"speed": 9}}, roots)
    errors = caught.value.errors
    assert set(errors) == {"path", "email", "options"}
    assert "outside" in errors["path"]
    assert "speed" in errors["options"]
    assert caught.value.as_json() == {"error": "the import request is invalid", "fields": errors}


@pytest.mark.parametrize(
    "options",
    [{"include": ""}, {"include": 3}, {"max_files": 0}, {"max_files": "9"}, {"max_files": True}],
)
def test_bad_importer_options_are_refused(roots, options):
    with pytest.raises(InvalidRequest) as caught:
        parse({"path": "data", "options": options}, roots)
    assert set(caught.value.errors) == {"options"}


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("x" * 256, "longer than 255 bytes"),
        ("data/" + "é" * 128, "longer than 255 bytes"),
        ("da\ud800ta", "not a usable path"),
        ("\udcff", "not a usable path"),
    ],
)
def test_paths_the_file_system_or_database_cannot_take_are_refused(roots, path, reason):
    with pytest.raises(ValueError, match=reason):
        resolve_path(path, roots)


def test_a_path_too_long_for_the_system_is_refused_not_raised(roots):
    path = "/".join(["d" * 200] * 20)  # each name is fine, the whole is over PATH_MAX
    with pytest.raises(ValueError, match="does not exist|cannot be resolved"):
        resolve_path(path, roots)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"path": "data", "options": {"max_files": ' + b"9" * 5000 + b"}}", "not valid JSON"),
        (b'{"path": "data", "options": {"max_files": NaN}}', "not valid JSON"),
        (b'{"path": "data", "options": {"max_files": ' + b"9" * 40 + b"}}", "options"),
        (b'{"path": "data", "options": {"include": "a\\u0000b"}}', "options"),
        (b'{"path": "data", "options": {"include": "\\ud800"}}', "options"),
        (b'{"path": "data", "options": {"x\\u0000": 1}}', "options"),
        (b'{"path": "data", "options": ' + b'{"a": ' * 30 + b"1" + b"}" * 30 + b"}", "options"),
    ],
)
def test_bodies_that_once_raised_are_invalid_requests(roots, body, where):
    with pytest.raises(InvalidRequest) as caught:
        parse(body, roots)
    assert where in caught.value.message or where in caught.value.errors
