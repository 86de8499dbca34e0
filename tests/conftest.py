"""Fixtures shared by all tests: the real-service harness from tests.harness."""

import os
import sys

import pytest

pytest_plugins = ["tests.harness.fixtures"]

_deselected_key = pytest.StashKey[str]()


def on_postgres() -> bool:
    """Return whether this run's Django test database is PostgreSQL (make test-postgres)."""
    return os.environ.get("KEW_TEST_DATABASE", "sqlite") == "postgres"


def uses_django_database(item: pytest.Item) -> bool:
    """Return whether ``item`` reaches the Django test database.

    Every pytest-django database fixture (``db``, ``transactional_db``,
    ``live_server``, ...) and every fixture built on one pulls in
    ``django_db_setup``; the ``django_db`` marker asks for one at run time, and
    so does a Django ``TransactionTestCase``. Tests that start processes on a
    database of their own (``postgres_server``) do not depend on which
    database the pass is about.
    """
    from django.test import TransactionTestCase

    if "django_db_setup" in getattr(item, "fixturenames", ()):
        return True
    cls = getattr(item, "cls", None)
    if cls is not None and issubclass(cls, TransactionTestCase) and cls.databases:
        return True
    return item.get_closest_marker("django_db") is not None


def pytest_collection_modifyitems(config, items):
    """Keep in each pass only the tests that depend on its database.

    The SQLite pass leaves out the PostgreSQL-only tests; the PostgreSQL
    pass leaves out every test that uses no Django database: it would run
    exactly as it did in the SQLite pass.
    """
    if on_postgres():
        reason = "use no Django database (the SQLite pass ran them)"
        chosen = [item for item in items if uses_django_database(item)]
    else:
        reason = "are PostgreSQL-only (the PostgreSQL pass runs them)"
        chosen = [item for item in items if item.get_closest_marker("postgresql_only") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        config.stash[_deselected_key] = f"{len(items) - len(chosen)} deselected: they {reason}"
        items[:] = chosen


def pytest_report_collectionfinish(config):
    """Say how many tests this pass left out, and why."""
    return config.stash.get(_deselected_key, None)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request, django_db_modify_db_settings_parallel_suffix):
    """Point the test database at PostgreSQL when KEW_TEST_DATABASE=postgres.

    Otherwise keep SQLite, but in a file rather than in memory: threads
    (relays, workers, the database provider's consumers) then get their
    own connections with SQLite's ordinary file locking.
    """
    import environ
    from django.conf import settings
    from django.db import connections

    database = settings.DATABASES["default"]
    if on_postgres():
        config = environ.Env.db_url_config(request.getfixturevalue("postgres_url"))
        for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT"):
            database[key] = config.get(key, "")
        database["OPTIONS"] = config.get("OPTIONS", {})
        connections["default"].close()
        del connections["default"]  # rebuilt for the new ENGINE on next use
    elif database["ENGINE"].endswith("sqlite3"):
        path = request.getfixturevalue("tmp_path_factory").mktemp("db") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(path)


@pytest.fixture(autouse=True)
def close_kew_notifiers():
    """Close Kew's NOTIFY connections after each test, so the test database can be dropped."""
    yield
    wake = sys.modules.get("kew_django.db.wake")  # imported by a test that sent, if any
    if wake is not None:
        wake.notifiers.close_all()
