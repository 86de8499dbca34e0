"""The business rows of the group-commit tests: one row per run of a handler that committed."""

from __future__ import annotations

import os
from collections import Counter

from django.db import connection

TABLE = "kew_test_effect"


def create() -> None:
    """Create the table (the tests' database has no model for it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {TABLE} (n integer NOT NULL, pid integer NOT NULL)")


def drop() -> None:
    """Drop the table."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def write(n: int) -> None:
    """Insert the business row of message ``n``, in the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (n, pid) VALUES (%s, %s)", [n, os.getpid()])


def counts() -> Counter[int]:
    """Return how many committed rows each message has."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n FROM {TABLE}")
        return Counter(n for (n,) in cursor.fetchall())


def by_process(pid: int) -> set[int]:
    """Return the messages whose rows process ``pid`` committed."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT n FROM {TABLE} WHERE pid = %s", [pid])
        return {n for (n,) in cursor.fetchall()}
