"""Fixtures shared by all tests: the real-service harness from tests.harness."""

import os

import pytest

pytest_plugins = ["tests.harness.fixtures"]


def on_postgres() -> bool:
    """Return whether this run's Django test database is PostgreSQL (make test-postgres)."""
    return os.environ.get("KEW_TEST_DATABASE", "sqlite") == "postgres"


def pytest_collection_modifyitems(config, items):
    """Deselect PostgreSQL-only tests on SQLite runs; the PostgreSQL pass runs them."""
    if on_postgres():
        return
    chosen = [item for item in items if item.get_closest_marker("postgresql_only") is None]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in chosen])
        items[:] = chosen


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
