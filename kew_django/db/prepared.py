"""Run Kew's own hot statements as prepared statements on PostgreSQL.

Django binds parameters on the client by default, so PostgreSQL parses
and plans every statement it gets. For the consumer's lease (a CTE with
``FOR UPDATE SKIP LOCKED``) planning is a good part of its round trip.
:func:`fetch_prepared` runs such a statement with server-side binding,
prepared once per connection by psycopg, on the Django connection
itself (its transaction, its type adapters, its error classes).

A connection whose ``prepare_threshold`` is ``None`` (``DATABASES[...]
["OPTIONS"]["prepare_threshold"] = None``: prepared statements off, as
behind PgBouncer in transaction mode) gets Django's ordinary cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections


def fetch_prepared(using: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Execute ``sql`` (``%s`` placeholders) on database ``using``; return its rows.

    On PostgreSQL the statement is prepared on the connection the first
    time and run as such after; elsewhere, or with prepared statements
    turned off, it runs through Django's cursor. Errors are Django's.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        if getattr(raw, "prepare_threshold", None) is not None:
            import psycopg

            connection.validate_no_broken_transaction()
            with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
                cursor.execute(sql, params, prepare=True)
                return cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
