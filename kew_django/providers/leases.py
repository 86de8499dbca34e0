"""Lease, release and delete rows of a database queue with raw SQL built once.

A consumer's claim is its hot path: the ORM spent most of a delivery
compiling the claim and reading the row back. ``Leases`` holds the
statements for one database and runs them with a cursor:

- PostgreSQL: one ``WITH head AS (SELECT ... FOR UPDATE SKIP LOCKED)
  UPDATE ... FROM head RETURNING`` statement; other consumers skip the
  locked rows. The old ``available_at`` comes back with each row, so a
  batch is handed out in queue order. Outside a caller's transaction its
  commit does not wait for the WAL flush (``UNFLUSHED_COMMIT``). Where
  the connection allows prepared statements (``prepare_threshold`` set;
  Django's default is None), it runs as one prepared once per connection
  (``db.prepared``).
- SQLite (3.35+, RETURNING): a SELECT of the head's ids, then an UPDATE
  of those still available; rows another consumer took in between fail
  the ``available_at <= now`` recheck and are left out.

Every instant is the database's (``clock``): "now" is its clock in the
SQL and a lease ends a lease's length after it, so hosts whose clocks
disagree never take each other's leases early.

``supported`` is False on other databases; the provider then keeps its
ORM claim. Each statement runs on its own (autocommit) unless the caller
is in a transaction; ``lease`` must not be called inside one that might
roll back after the rows are handed out.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connections

from kew_django.db.prepared import fetch_prepared
from kew_django.db.returning import Converter, updates_return_rows
from kew_django.providers.clock import LATER, NOW


class Leased(NamedTuple):
    """One leased row: what a delivery needs, and the position it had in the queue."""

    id: int
    queue: str
    payload: bytes | memoryview
    message_id: str | None
    properties: dict[str, Any]
    redelivered: bool
    available_at: datetime  # before the lease: the row's place in the queue


RETURNED = ("id", "queue", "payload", "message_id", "properties", "redelivered")

# A lease in a transaction of its own commits without waiting for its WAL flush
# (``synchronous_commit`` off for that transaction alone): the handler's commit,
# which waits, flushes it first, and a database crash that loses it also loses
# the handler's work, so the row is simply due again, as if never leased.
UNFLUSHED_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true))"


class Leases:
    """The lease statements of the ``QueuedMessage`` table on database ``using``."""

    def __init__(self, using: str):
        from kew_django.models import QueuedMessage  # this module loads before the models do

        self.using = using
        connection = connections[using]
        self.vendor = connection.vendor
        self.supported = updates_return_rows(connection)
        meta, quote = QueuedMessage._meta, connection.ops.quote_name
        self._table = quote(meta.db_table)
        self._column = {f.name: quote(f.column) for f in meta.concrete_fields if f.column}
        self._converter = Converter(QueuedMessage, (*RETURNED, "available_at"), connection)
        self._now, self._later = NOW.get(self.vendor, ""), LATER.get(self.vendor, "")
        postgres = self.vendor == "postgresql"
        self._lease_sql = self._postgres_lease(flushed=True) if postgres else None
        self._own_lease_sql = self._postgres_lease(flushed=False) if postgres else None
        self._datetime_field = meta.get_field("available_at")
        self._token_field = meta.get_field("lease_token")

    def _postgres_lease(self, *, flushed: bool) -> str:
        c, t = self._column, self._table
        returned = ", ".join(f"{t}.{c[name]}" for name in RETURNED)
        unflushed = "" if flushed else f", {UNFLUSHED_COMMIT} AS unflushed"
        return (
            f"WITH head AS (SELECT {c['id']}, {c['available_at']} FROM {t} "
            f"WHERE {c['queue']} = %s AND {c['available_at']} <= {self._now} "
            f"ORDER BY {c['available_at']}, {c['id']} LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {t} SET {self._lease_assignments()} FROM head{unflushed} "
            f"WHERE {t}.{c['id']} = head.{c['id']} "
            f"RETURNING {returned}, head.{c['available_at']}"
        )

    def _lease_assignments(self) -> str:
        c = self._column
        return (
            f"{c['available_at']} = {self._later}, {c['leased_until']} = {self._later}, "
            f"{c['lease_token']} = %s, "
            f"{c['redelivered']} = ({c['redelivered']} OR {c['lease_token']} IS NOT NULL)"
        )

    def lease(self, queue: str, *, length: timedelta, token: uuid.UUID, limit: int) -> list[Leased]:
        """Lease up to ``limit`` rows of ``queue`` due now, for ``length``; return them in order.

        "Now" and the lease's end are the database's time, not this host's.

        ``redelivered`` is set on rows that were leased before (a lease ran
        out or a consumer released them after handing them out).
        """
        connection = connections[self.using]
        seconds = length.total_seconds()
        end = seconds if self._lease_sql is not None else f"+{seconds} seconds"
        key = self._prep_token(token)
        if self._lease_sql is not None:
            own = self._own_lease_sql if not connection.in_atomic_block else None
            rows = fetch_prepared(self.using, own or self._lease_sql, [queue, limit, end, end, key])
        else:
            with connection.cursor() as cursor:
                rows = self._sqlite_lease(cursor, queue, end, key, limit)
        leased = [Leased._make(values) for values in self._converter.rows(rows)]
        return sorted(leased, key=lambda row: (row.available_at, row.id))

    def _sqlite_lease(self, cursor, queue: str, end: float | str, key, limit: int) -> list:
        c, t = self._column, self._table
        cursor.execute(
            f"SELECT {c['id']}, {c['available_at']} FROM {t} "
            f"WHERE {c['queue']} = %s AND {c['available_at']} <= {self._now} "
            f"ORDER BY {c['available_at']}, {c['id']} LIMIT %s",
            [queue, limit],
        )
        head = dict(cursor.fetchall())
        if not head:
            return []
        marks = ", ".join(["%s"] * len(head))
        cursor.execute(
            f"UPDATE {t} SET {self._lease_assignments()} "
            f"WHERE {c['id']} IN ({marks}) AND {c['available_at']} <= {self._now} "
            f"RETURNING {', '.join(c[name] for name in RETURNED)}",
            [end, end, key, *head],
        )
        return [(*row, head[row[0]]) for row in cursor.fetchall()]

    def release(self, rows: list[tuple[int, datetime]], token: uuid.UUID) -> None:
        """End the lease ``token`` of rows never handed out: back to their place, as they were."""
        c, t = self._column, self._table
        key = self._prep_token(token)
        with connections[self.using].cursor() as cursor:
            cursor.executemany(
                f"UPDATE {t} SET {c['available_at']} = %s, {c['leased_until']} = NULL, "
                f"{c['lease_token']} = NULL WHERE {c['id']} = %s AND {c['lease_token']} = %s",
                [(self._prep_datetime(place), pk, key) for pk, place in rows],
            )

    def delete(self, pk: int, token: uuid.UUID) -> bool:
        """Delete row ``pk`` if lease ``token`` still holds it (an ack); return whether it did."""
        c, t = self._column, self._table
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {t} WHERE {c['id']} = %s AND {c['lease_token']} = %s",
                [pk, self._prep_token(token)],
            )
            return cursor.rowcount > 0

    def delete_many(self, pks: list[int], token: uuid.UUID) -> int:
        """Delete rows ``pks`` that lease ``token`` still holds (acks); return how many it did."""
        if not pks:
            return 0
        c, t = self._column, self._table
        marks = ", ".join(["%s"] * len(pks))
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {t} WHERE {c['id']} IN ({marks}) AND {c['lease_token']} = %s",
                [*pks, self._prep_token(token)],
            )
            return cursor.rowcount

    def _prep_datetime(self, value: datetime):
        return self._datetime_field.get_db_prep_value(  # type: ignore[union-attr]
            value, connections[self.using]
        )

    def _prep_token(self, token: uuid.UUID):
        return self._token_field.get_db_prep_value(  # type: ignore[union-attr]
            token, connections[self.using]
        )
