"""A savepoint kept open for the commit to release (group commit's handlers)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from kew_django.db.savepoints import kept_savepoint
from kew_django.models import ProcessedMessage

pytestmark = pytest.mark.django_db(transaction=True)


def record(name: str) -> None:
    ProcessedMessage.objects.create(consumer="savepoints", message_id=name)


def recorded() -> list[str]:
    return sorted(
        ProcessedMessage.objects.filter(consumer="savepoints").values_list("message_id", flat=True)
    )


def test_a_block_that_succeeds_releases_nothing_and_commits_with_the_transaction():
    callbacks: list[str] = []
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        for name in ("a", "b", "c"):
            with kept_savepoint("default"):
                record(name)
                transaction.on_commit(lambda name=name: callbacks.append(name))
        statements = [query["sql"].upper() for query in queries.captured_queries]
        assert sum(sql.startswith("SAVEPOINT") for sql in statements) == 3
        assert not any(sql.startswith("RELEASE") for sql in statements)
    assert recorded() == ["a", "b", "c"]
    assert callbacks == ["a", "b", "c"]


def test_a_block_that_raises_loses_its_writes_and_callbacks_only():
    callbacks: list[str] = []
    with transaction.atomic():
        with kept_savepoint("default"):
            record("kept")
            transaction.on_commit(lambda: callbacks.append("kept"))
        with pytest.raises(ValueError), kept_savepoint("default"):
            record("lost")
            transaction.on_commit(lambda: callbacks.append("lost"))
            raise ValueError("the handler's")
        record("after")
    assert recorded() == ["after", "kept"]
    assert callbacks == ["kept"]


def test_a_database_error_inside_is_rolled_back_and_the_transaction_goes_on():
    with transaction.atomic():
        with pytest.raises(DatabaseError), kept_savepoint("default"):
            record("lost")
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM kew_no_such_table")
        assert not connection.needs_rollback
        record("after")
    assert recorded() == ["after"]


def test_an_inner_failure_caught_inside_rolls_the_block_back_as_atomic_does():
    with transaction.atomic():
        with kept_savepoint("default"):
            record("lost")
            try:
                with transaction.atomic(savepoint=False):
                    raise ValueError("caught by the handler")
            except ValueError:
                pass
        assert not connection.needs_rollback
        record("after")
    assert recorded() == ["after"]


def test_it_runs_only_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside a transaction"), kept_savepoint("default"):
        pass
