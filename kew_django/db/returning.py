"""Rows read with raw SQL (``UPDATE ... RETURNING``), converted as the ORM converts them.

A raw cursor returns what the driver gives: on SQLite, datetimes and UUIDs
as text and JSON as a string. ``Converter`` applies the backend's and the
fields' converters, found once, to the columns that need them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


def concrete_field(model: type[models.Model], name: str) -> models.Field:
    """Return ``model``'s field ``name``: a concrete column, not a relation."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field), name
    return field


def updates_return_rows(connection: BaseDatabaseWrapper) -> bool:
    """Return whether ``connection`` runs ``UPDATE ... RETURNING`` (PostgreSQL, SQLite 3.35+)."""
    returning = connection.features.can_return_columns_from_insert  # UPDATE too, on these two
    return connection.vendor in ("postgresql", "sqlite") and returning


class Converter:
    """Convert rows whose columns are the fields ``names`` of ``model``, in that order."""

    def __init__(
        self, model: type[models.Model], names: Sequence[str], connection: BaseDatabaseWrapper
    ):
        self.connection = connection
        self.conversions = []  # (index, column, converters) of the columns that need them
        table = model._meta.db_table
        for index, name in enumerate(names):
            field = concrete_field(model, name)
            column = field.get_col(table)
            converters = connection.ops.get_db_converters(column) + field.get_db_converters(
                connection
            )
            if converters:
                self.conversions.append((index, column, converters))

    def rows(self, rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
        """Return ``rows`` as lists of converted values."""
        converted = []
        for row in rows:
            values = list(row)
            for index, column, converters in self.conversions:
                for converter in converters:
                    values[index] = converter(values[index], column, self.connection)
            converted.append(values)
        return converted
