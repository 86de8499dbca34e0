"""Fixtures of the scale-out tests: a migrated PostgreSQL database, a queue prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness.processes import ScaleDatabase


@pytest.fixture(scope="session")
def scale_db(postgres_server, tmp_path_factory) -> Iterator[ScaleDatabase]:
    """A fresh database for the relay and consumer processes, shared by the session."""
    database = ScaleDatabase(postgres_server, tmp_path_factory.mktemp("scale-db"))
    yield database
    database.drop()


@pytest.fixture
def prefix() -> str:
    """The queue prefix of this test: ``<prefix>.work``, ``.plain``, ``.timed``."""
    return f"scale{uuid.uuid4().hex[:8]}"
