"""Insert one outbox row with a statement compiled once per database.

``Model.save(force_insert=True)`` compiles its INSERT through the ORM on
every call, a large share of a send's CPU; ``OutboxInsert`` compiles it once
and prepares only the values, with each field's ``get_db_prep_save``, so the
database receives what the ORM would have sent. Like ``bulk_create``
(``send_many``), it sends no ``pre_save`` or ``post_save`` signal. See
docs/internals.md#the-outboxs-insert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connections
from django.db.models import Field
from django.db.models.sql import InsertQuery

from kew_django.db.returning import concrete_field

if TYPE_CHECKING:
    from kew_django.models import OutboxMessage

COLUMNS = (
    "id",
    "queue",
    "payload",
    "content_type",
    "headers",
    "deliver_at",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "requeue_of",
    "retry_at",  # set when its sender publishes it on commit (``outbox.oncommit``)
)
"""What a new row sets; ``sent_at`` starts NULL."""


class OutboxInsert:
    """The outbox's one-row INSERT, compiled once per database alias; thread-safe.

    Made before the app registry is ready (a ``Channel`` at import time),
    it looks the model up on first use.
    """

    def __init__(self) -> None:
        self._fields: list[Field] = []
        self._sql: dict[str, str] = {}  # alias -> statement

    def insert(self, row: OutboxMessage, using: str) -> None:
        """Write ``row`` on database ``using``, in its current transaction if there is one."""
        connection = connections[using]
        sql = self._sql.get(using) or self._compile(row, using)
        params = [
            field.get_db_prep_save(getattr(row, field.attname), connection)
            for field in self._fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        row._state.adding = False
        row._state.db = using

    def _compile(self, row: OutboxMessage, using: str) -> str:
        fields = [concrete_field(type(row), name) for name in COLUMNS]
        query = InsertQuery(type(row))
        query.insert_values(fields, [row])
        [(sql, params)] = query.get_compiler(using=using).as_sql()
        assert len(params) == len(fields), (sql, params)  # one placeholder a value
        self._fields = fields
        self._sql[using] = sql
        return sql
