"""Write new rows of a database queue with one INSERT, in the caller's transaction.

``Channel.send`` to a queue of a database provider with ``direct`` on
writes here instead of the outbox: the queue table is in the caller's
database already, so the row needs no relay and no second copy. The
statement is built by hand (as ``leases``): a row without a due time is
due at the database's now (``clock.NOW``), one with a due time at that
time moved by the sender's clock offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections

from kew_django.db.returning import concrete_field
from kew_django.providers.clock import NOW

COLUMNS = ("queue", "payload", "message_id", "properties", "available_at", "created_at")


class NewRow(NamedTuple):
    """One message to write to a database queue."""

    queue: str
    payload: bytes
    message_id: str
    properties: dict[str, str]
    available_at: datetime | None  # on the database's clock; None: due at its now
    created_at: datetime


class QueueInsert:
    """The queue table's INSERT on database ``using``; thread-safe once made."""

    def __init__(self, using: str):
        from kew_django.models import QueuedMessage  # this module loads before the models do

        self.using = using
        connection = connections[using]
        meta, quote = QueuedMessage._meta, connection.ops.quote_name
        self._fields = [concrete_field(QueuedMessage, name) for name in (*COLUMNS, "redelivered")]
        column = {f.name: quote(f.column) for f in meta.concrete_fields if f.column}
        columns = ", ".join(column[field.name] for field in self._fields)
        self._head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "
        now = NOW.get(connection.vendor)
        due = f"COALESCE(%s, {now})" if now else "%s"
        self._values = f"(%s, %s, %s, %s, {due}, %s, %s)"
        returns = connection.vendor in ("postgresql", "sqlite")
        returns = returns and connection.features.can_return_rows_from_bulk_insert
        self._returning = f" RETURNING {column['id']}" if returns else ""
        self._host_clock = now is None  # another database: due now on this host's clock

    def insert(self, rows: Sequence[NewRow]) -> list[int | None]:
        """Write ``rows`` in one statement, in order; return their ids (None where unknown)."""
        connection = connections[self.using]
        params: list[Any] = []
        for row in rows:
            if self._host_clock and row.available_at is None:
                row = row._replace(available_at=row.created_at)
            params.extend(
                field.get_db_prep_save(value, connection)
                for field, value in zip(self._fields, (*row, False), strict=True)
            )
        sql = self._head + ", ".join([self._values] * len(rows)) + self._returning
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if self._returning:
                return [pk for (pk,) in cursor.fetchall()]
        return [None] * len(rows)
