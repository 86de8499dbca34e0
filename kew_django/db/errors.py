"""The database errors that mean the connection broke or the database is out of reach."""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

# Recoverable: retry on a new connection. Other database errors (IntegrityError,
# ProgrammingError, ...) are the statement's own and fail the same way again.
DATABASE_ERRORS = (OperationalError, InterfaceError)
