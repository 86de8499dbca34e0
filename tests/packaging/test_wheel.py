"""What `pip install kew` gets: the wheel's files and its declared dependencies."""

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.packaging.conftest import ROOT

pytestmark = pytest.mark.slow

PACKAGES = {"kew", "kew_django"}


def source_files(package: str, pattern: str) -> set[str]:
    """Return the package's files matching pattern, as paths inside the wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / package).rglob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }


def requirements(metadata, extra: str = "") -> dict[str, Requirement]:
    """Return the requirements in force for one extra ("" for a plain install), by name.

    A requirement on kew itself (``kew[artemis,...]``) is expanded into
    the requirements of the extras it names.
    """
    found: dict[str, Requirement] = {}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        if canonicalize_name(requirement.name) == "kew":
            for included in requirement.extras:
                found.update(requirements(metadata, included))
        else:
            found[canonicalize_name(requirement.name)] = requirement
    return found


def test_wheel_ships_only_kew_and_kew_django(wheel_names):
    top = {name.split("/")[0] for name in wheel_names}
    (dist_info,) = [name for name in top if name.endswith(".dist-info")]
    assert top - {dist_info} == PACKAGES
    assert not [name for name in wheel_names if "__pycache__" in name or name.endswith(".pyc")]


def test_wheel_holds_no_test_harness(wheel_names):
    assert not [name for name in wheel_names if name.startswith(("kew/testing", "tests/"))]
    assert "kew_django/testing.py" in wheel_names  # what ships for users' tests


def test_wheel_has_every_module_template_migration_and_py_typed(wheel_names):
    names = set(wheel_names)
    for package in PACKAGES:
        assert f"{package}/py.typed" in names
        assert source_files(package, "*.py") <= names
    templates = source_files("kew_django", "templates/**/*")
    assert templates and templates <= names
    migrations = source_files("kew_django", "migrations/*.py")
    assert "kew_django/migrations/0001_initial.py" in migrations
    assert migrations <= names


def test_a_plain_install_requires_nothing(metadata):
    assert requirements(metadata) == {}, "the core imports only the standard library"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("artemis", {"stomp-py": None}),
        ("rabbitmq", {"pika": ">=1.3,<2"}),
        ("django", {"django": ">=5.2,<7"}),
        ("postgres", {"psycopg": None}),
        ("metrics", {"prometheus-client": None}),
        ("tracing", {"opentelemetry-api": None}),
    ],
)
def test_each_extra_requires_what_its_part_imports(metadata, extra, expected):
    assert extra in metadata.get_all("Provides-Extra")
    found = requirements(metadata, extra)
    assert set(found) == set(expected)
    for name, specifier in expected.items():
        if specifier:
            assert found[name].specifier == SpecifierSet(specifier)
    if extra == "postgres":
        assert found["psycopg"].extras == {"binary"}


def test_dev_extra_has_every_other_extra_and_the_tools(metadata):
    dev = requirements(metadata, "dev")
    for extra in ("artemis", "rabbitmq", "django", "postgres", "metrics", "tracing"):
        assert set(requirements(metadata, extra)) <= set(dev), extra
    tools = {"django-environ", "pytest-django", "mypy", "django-stubs", "hypothesis", "build"}
    assert tools <= set(dev)
    assert "compatible-mypy" in dev["django-stubs"].extras


def test_django_environ_is_only_for_the_project(metadata):
    extras = set(metadata.get_all("Provides-Extra")) - {"dev"}
    assert not [e for e in extras if "django-environ" in requirements(metadata, e)]
