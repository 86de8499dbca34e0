"""Ride out a database outage in a worker without spending the message's attempts.

While the database is down, a handler's transaction cannot even start,
and a dead letter cannot be written. Counting that as the handler's
failure would spend the message's retries (and, on Artemis, reopening
the consumer over and over raises the broker's own delivery count until
``max-delivery-attempts`` moves the message to its dead-letter address).

``DatabaseGate.through`` runs a step (the handler's transaction, the dead
letter) and, when it fails with a database error *and the database is
unreachable*, holds the delivery: it backs off, logging once when the
database goes and once when it comes back, and runs the step again,
until it works or the worker is told to stop (then ``StorageUnavailable``:
the delivery is left unacked and comes back, still without an attempt
spent). A database error while the database answers is the handler's own
failure, retried on its schedule as before. Runs on the worker's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

from kew.backoff import Backoff
from kew.errors import StorageUnavailable
from kew_django.db.errors import DATABASE_ERRORS

T = TypeVar("T")
log = logging.getLogger(__name__)


def database_down(using: str) -> bool:
    """Return whether database ``using`` cannot be reached (its connection broke or is gone).

    Inside an outer transaction (a test's) this cannot be told without
    ending it, so it answers False.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return False
    try:
        if connection.connection is not None and connection.is_usable():
            return False
    except Exception:  # noqa: BLE001 - a broken connection may fail to answer at all
        pass
    connection.close()  # the next try opens a new one
    try:
        connection.ensure_connection()
    except DATABASE_ERRORS:
        return True
    return True  # it broke under us and is back: an outage, over now; run the step again


class DatabaseGate:
    """Hold a worker's delivery while its database is down (see the module docstring)."""

    def __init__(self, using: str, *, what: str, backoff_max: float = 5.0):
        self.using = using
        self.stop = threading.Event()  # the worker's, set by ``Worker.run``
        self.backoff = Backoff(backoff_max, what=f"database {using!r} ({what})", logger=log)

    def through(self, step: Callable[[], T]) -> T:
        """Run ``step``; while the database is down, wait and run it again."""
        while True:
            try:
                result = step()
            except DATABASE_ERRORS as error:
                if not database_down(self.using):
                    raise  # the handler's own failure
                self.backoff.failed(error)
                if self.stop.wait(self.backoff.delay()):
                    raise StorageUnavailable(
                        f"database {self.using!r} is down; the delivery is left to come back"
                    ) from error
                continue
            self.backoff.succeeded()
            return result
