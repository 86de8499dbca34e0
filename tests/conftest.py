"""Fixtures shared by all tests: the real-service harness from tests.harness."""

import gc
import os
import sys

import pytest

pytest_plugins = ["tests.harness.fixtures"]

_deselected_key = pytest.StashKey[list[str]]()


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


def this_leg() -> int | None:
    """Return the CI leg this run is (``KEW_TEST_LEG``), or None when every test runs."""
    value = os.environ.get("KEW_TEST_LEG", "")
    if not value:
        return None
    if value not in {"1", "2"}:
        raise pytest.UsageError(f"KEW_TEST_LEG={value!r}: expected 1 or 2, or unset (every test)")
    return int(value)


def leg_of(item: pytest.Item) -> int | None:
    """Return the one leg a ``one_leg(1)`` or ``one_leg(2)`` test runs in, or None (every leg)."""
    marker = item.get_closest_marker("one_leg")
    if marker is None:
        return None
    if marker.args not in {(1,), (2,)} or marker.kwargs:
        raise pytest.UsageError(
            f"{item.nodeid}: the one_leg marker takes its leg: one_leg(1) or one_leg(2)"
        )
    return int(marker.args[0])


def database_selection(items: list[pytest.Item]) -> tuple[list[pytest.Item], str]:
    """Return the tests this pass's database needs, and why the others are left out."""
    if on_postgres():
        reason = "they use no Django database (the SQLite pass ran them)"
        return [item for item in items if uses_django_database(item)], reason
    reason = "they are PostgreSQL-only (the PostgreSQL pass runs them)"
    return [item for item in items if item.get_closest_marker("postgresql_only") is None], reason


def pytest_collection_modifyitems(config, items):
    """Keep in each pass only the tests that depend on its database, and in a CI leg its own.

    The SQLite pass leaves out the PostgreSQL-only tests; the PostgreSQL
    pass leaves out every test that uses no Django database: it would run
    exactly as it did in the SQLite pass. With ``KEW_TEST_LEG`` set (``make
    test`` sets 1 in the Python 3.11 leg, 2 in the 3.13 one) a test marked
    ``one_leg`` runs only in the leg it names; unset, every test runs.
    """
    legs = {item: leg_of(item) for item in items}  # every marker checked, whatever the leg
    chosen, reason = database_selection(items)
    lines = [f"{len(items) - len(chosen)} deselected: {reason}"] if len(chosen) < len(items) else []
    leg = this_leg()
    if leg is not None:
        mine = [item for item in chosen if legs[item] in (None, leg)]
        lines.append(
            f"{len(chosen) - len(mine)} left to the other leg: long process tests run in one"
            f" CI leg only (KEW_TEST_LEG={2 if leg == 1 else 1} runs them)"
        )
        chosen = mine
    kept = set(chosen)
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = chosen
    config.stash[_deselected_key] = lines


def pytest_report_collectionfinish(config):
    """Say how many tests this pass left out, and why."""
    return config.stash.get(_deselected_key, [])


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
        request.addfinalizer(close_listeners)  # before the server stops: no retries after it
    elif database["ENGINE"].endswith("sqlite3"):
        path = request.getfixturevalue("tmp_path_factory").mktemp("db") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(path)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test databases; LISTEN threads tests left open close before the drop."""
    yield
    close_listeners()  # each holds a session on the test database, which DROP DATABASE refuses


def close_listeners() -> None:
    """Stop the LISTEN threads of providers that tests left open."""
    notify = sys.modules.get("kew_django.db.notify")
    if notify is not None:
        for listener in [o for o in gc.get_objects() if isinstance(o, notify.Listener)]:
            listener.close()


@pytest.fixture(autouse=True)
def close_kew_notifiers():
    """Close Kew's NOTIFY connections after each test, so the test database can be dropped."""
    yield
    wake = sys.modules.get("kew_django.db.wake")  # imported by a test that sent, if any
    if wake is not None:
        wake.notifiers.close_all()
