"""The database's clock: the one clock of the database provider's leases and due times.

Hosts' clocks disagree (a host without NTP drifts by minutes), so every
statement that compares or writes a lease or a due time reads the
database's clock in its SQL (``NOW``, ``LATER``). The one instant that
comes from a host, a message's ``deliver_at`` (a retry's is "now + delay"
on the worker's clock), is moved by ``Clock.offset``, how far this host's
clock is from the database's.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from django.db import connections
from django.utils import timezone

from kew_django.db.returning import Converter

NOW = {  # the database's clock, in the text of a statement
    "postgresql": "statement_timestamp()",
    # UTC, "YYYY-MM-DD HH:MM:SS.SSS": compares in order with the text Django stores
    "sqlite": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')",
}
LATER = {  # the database's clock plus a parameter: seconds, "+N seconds" on SQLite
    "postgresql": "(statement_timestamp() + %s * interval '1 second')",
    "sqlite": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s)",
}
CHECK_EVERY = 60.0  # seconds between two reads of the database's clock
TOLERANCE = timedelta(seconds=1)  # a smaller change keeps the offset as it was
ZERO = timedelta(0)


class Clock:
    """How far the clock of database ``using`` is ahead of this host's; thread-safe."""

    def __init__(self, using: str):
        self.using = using
        self._lock = threading.Lock()
        self._offset = ZERO
        self._checked_at = -float("inf")  # time.monotonic()

    def offset(self) -> timedelta:
        """Return the database's time minus this host's, read again once a minute.

        Within ``TOLERANCE`` of the last value it stays as it was (zero on a
        host whose clock is right), so due times sent one after the other
        keep their order. Runs one SELECT on the caller's connection when it
        reads the clock; other databases than PostgreSQL and SQLite: zero.
        """
        with self._lock:
            if time.monotonic() < self._checked_at + CHECK_EVERY:
                return self._offset
        measured = self._measure()
        with self._lock:
            if abs(measured - self._offset) > TOLERANCE:
                self._offset = measured
            self._checked_at = time.monotonic()
            return self._offset

    def _measure(self) -> timedelta:
        connection = connections[self.using]
        sql = NOW.get(connection.vendor)
        if sql is None:
            return ZERO
        before = timezone.now()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql}", [])
            value = cursor.fetchone()[0]
        after = timezone.now()
        return _as_datetime(value, connection) - (before + (after - before) / 2)


def _as_datetime(value, connection) -> datetime:
    """Return a datetime read from ``connection`` as the ORM returns a DateTimeField's."""
    from kew_django.models import QueuedMessage  # this module loads before the models do

    return Converter(QueuedMessage, ["available_at"], connection).rows([[value]])[0][0]
