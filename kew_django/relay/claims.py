"""Claim a batch of outbox rows: lock them and mark them sent, in one statement.

The mark is part of the relay's transaction, so it becomes visible only if
the relay commits, which it does after the provider confirmed the batch;
a crash or a lost broker rolls it back. Other relays skip the locked rows
(PostgreSQL) or wait for the write lock (SQLite).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.db import connections
from django.db.models import Field, QuerySet
from django.utils import timezone

from kew_django.db.returning import Converter, concrete_field, updates_return_rows
from kew_django.models import OutboxMessage


class Claimed(NamedTuple):
    """One claimed outbox row: the columns the relay publishes."""

    id: uuid.UUID
    queue: str
    payload: bytes | memoryview
    content_type: str
    headers: dict[str, Any]
    deliver_at: datetime | None
    attempts: int
    created_at: datetime


CLAIMED = Claimed._fields
PENDING, SENT = OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT
PLACEHOLDER = datetime(2000, 1, 1, 0, 0, 0, 424242, tzinfo=UTC)
"""Stands for "now" in a compiled claim; each claim puts the current time in its place."""


class Claims:
    """One relay's claim, compiled once: each claim only puts the current time in it.

    ``claimable(now)`` returns the rows a claim takes as of ``now`` (oldest
    first). On PostgreSQL and SQLite its ``UPDATE ... RETURNING`` is
    compiled once per batch size, with ``PLACEHOLDER`` for now, and every
    parameter that is the placeholder gets the current time. Other
    databases compile ``claimable`` on every claim. Shared by the relay's
    threads: each runs the statement on its own connection.
    """

    def __init__(self, claimable: Callable[[datetime], QuerySet], using: str):
        self.claimable = claimable
        self.using = using
        self._compiled: dict[int, tuple[str, list, list[int]]] = {}  # limit -> sql, params, nows
        self._converter: Converter | None = None

    def claim(self, limit: int) -> list[Claimed]:
        """Mark the first ``limit`` claimable rows sent (uncommitted); return them in order.

        Call inside ``transaction.atomic(using=self.using)``.
        """
        connection = connections[self.using]
        if not updates_return_rows(connection):
            return claim(self.claimable(timezone.now()), limit, self.using)
        sql, params, nows = self._compiled.get(limit) or self._compile(limit)
        now = _field("sent_at").get_db_prep_value(timezone.now(), connection)
        params = list(params)
        for index in nows:
            params[index] = now
        if self._converter is None:
            self._converter = Converter(OutboxMessage, CLAIMED, connection)
        return _in_order(_update_returning(sql, params, connection, self._converter))

    def _compile(self, limit: int) -> tuple[str, list, list[int]]:
        connection = connections[self.using]
        sql, params = claim_sql(self.claimable(PLACEHOLDER), limit, self.using, now=PLACEHOLDER)
        placeholder = _field("sent_at").get_db_prep_value(PLACEHOLDER, connection)
        nows = [index for index, value in enumerate(params) if value == placeholder]
        # sent_at and the back-off's retry_at at least; fewer means the ORM prepared it otherwise
        assert len(nows) >= 2, (sql, params)
        self._compiled[limit] = (sql, params, nows)
        return sql, params, nows


def claim(pending: QuerySet, limit: int, using: str) -> list[Claimed]:
    """Mark the first ``limit`` rows of ``pending`` sent (uncommitted); return them in order.

    Call inside ``transaction.atomic(using=using)``. Compiles ``pending``
    each time; a relay uses ``Claims``, which compiles it once.
    """
    connection = connections[using]
    if updates_return_rows(connection):
        converter = Converter(OutboxMessage, CLAIMED, connection)
        rows = _update_returning(*claim_sql(pending, limit, using), connection, converter)
    else:  # NOTE: no UPDATE ... RETURNING here: lock, read, then mark
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        rows = [Claimed(*r) for r in pending.values_list(*CLAIMED)[:limit]]
        OutboxMessage.objects.using(using).filter(pk__in=[r.id for r in rows]).update(
            status=OutboxMessage.Status.SENT, sent_at=timezone.now()
        )
    return _in_order(rows)


def mark_sent(ids: Sequence[uuid.UUID], using: str) -> int:
    """Mark the rows among ``ids`` still pending sent, in one statement; return how many.

    For rows published without a claim (publishing on commit): a row a relay
    has claimed meanwhile waits for that relay's transaction, then is left as
    it made it. Inside a transaction on PostgreSQL its commit does not wait
    for the WAL flush: a mark lost with the database only makes the relay
    publish the rows again, a duplicate absorbed as its re-sends are.
    """
    if not ids:
        return 0
    connection = connections[using]
    if connection.vendor != "postgresql":
        pending = OutboxMessage.objects.using(using).filter(pk__in=ids, status=PENDING)
        return pending.update(status=SENT, sent_at=timezone.now())
    quote = connection.ops.quote_name
    table, pk, status = (
        quote(OutboxMessage._meta.db_table),
        quote(_column("id")),
        quote(_column("status")),
    )
    sql = (  # no ORM compilation on every batch: ``= ANY`` takes any number of ids
        f"UPDATE {table} SET {status} = %s, {quote(_column('sent_at'))} = %s "
        f"WHERE {pk} = ANY(%s) AND {status} = %s"
    )
    sent_at = _field("sent_at").get_db_prep_value(timezone.now(), connection)
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(sql, [SENT, sent_at, list(ids), PENDING])
        return cursor.rowcount


def claim_sql(
    pending: QuerySet, limit: int, using: str, *, now: datetime | None = None
) -> tuple[str, list]:
    """Return the UPDATE ... RETURNING statement that claims a batch, and its parameters.

    ``now`` is the ``sent_at`` it sets (default: the current time).

    On PostgreSQL the ids are collected with ``ARRAY(subquery)`` (one index
    scan of the pending rows, under SKIP LOCKED), so the update then finds
    each row through the primary key however large the table grows;
    ``IN (subquery)`` may be planned as a sequential scan.
    """
    connection = connections[using]
    head = pending.values("pk")
    if connection.features.has_select_for_update_skip_locked:
        head = head.select_for_update(skip_locked=True)
    head_sql, head_params = head[:limit].query.get_compiler(using).as_sql()
    meta, quote = OutboxMessage._meta, connection.ops.quote_name
    ids = f"= ANY(ARRAY({head_sql}))" if connection.vendor == "postgresql" else f"IN ({head_sql})"
    sent_at = _field("sent_at")
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(_column('status'))} = %s, "
        f"{quote(_column('sent_at'))} = %s WHERE {quote(_column(meta.pk.name))} {ids} "
        f"RETURNING {', '.join(quote(_column(name)) for name in CLAIMED)}"
    )
    sent = sent_at.get_db_prep_value(now or timezone.now(), connection)
    return sql, [OutboxMessage.Status.SENT, sent, *head_params]


def _update_returning(sql: str, params: list, connection, converter: Converter) -> list[Claimed]:
    """Run a claim's ``UPDATE ... RETURNING``; return its rows, converted as the ORM would."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [Claimed._make(values) for values in converter.rows(rows)]


def _in_order(rows: list[Claimed]) -> list[Claimed]:
    """Return claimed ``rows`` in the order they were written (the relay publishes so)."""
    return sorted(rows, key=lambda row: (row.created_at, row.id))


def _field(name: str) -> Field:
    """Return the outbox model's field ``name``: a concrete column, not a relation."""
    return concrete_field(OutboxMessage, name)


def _column(name: str) -> str:
    """Return the database column of the outbox model's field ``name``."""
    column = _field(name).column
    assert column is not None, name
    return column
