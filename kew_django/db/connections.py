"""Database connections of worker threads."""

from __future__ import annotations

from django.db import connections


def close_db_connections() -> None:
    """Close this thread's database connections (call at the end of a worker thread)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
