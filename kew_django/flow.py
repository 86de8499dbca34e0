"""Flow control for the relay and the workers: back-off, waiting, ordered turns."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator

from django.db import connections

from kew.errors import ConnectionLost
from kew_django.notify import Listener

log = logging.getLogger("kew_django.relay")


class Backoff:
    """Exponential back-off with jitter; logs once per change of state. Thread-safe enough."""

    def __init__(self, maximum: float, *, first: float = 0.5, what: str = "broker"):
        self.maximum = maximum
        self.first = first
        self.what = what
        self.failures = 0
        self.since: float | None = None

    def failed(self, error: Exception) -> None:
        """Count a failure; the first of a run is logged."""
        if self.failures == 0:
            self.since = time.monotonic()
            log.warning("%s unavailable (%s); backing off, no attempts spent", self.what, error)
        self.failures += 1

    def succeeded(self) -> None:
        """End a run of failures, logging how long it lasted."""
        if self.failures:
            down = time.monotonic() - (self.since or time.monotonic())
            log.warning("%s available again after %.1fs", self.what, down)
        self.failures = 0

    def delay(self) -> float:
        """Return how long to wait before the next try."""
        ceiling = min(self.maximum, self.first * 2 ** min(max(self.failures, 1) - 1, 16))
        return random.uniform(ceiling / 2, ceiling)


def wait(stop: threading.Event, seconds: float, listener: Listener | None = None,
         generation: int = 0) -> None:
    """Wait ``seconds``, waking early on ``stop`` or (with a listener) a notification."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
        if listener is not None and listener.active:
            if listener.wait(None, generation, min(remaining, 0.25)):
                return
        else:
            stop.wait(min(remaining, 0.25))


class TurnRefused(ConnectionLost):
    """A batch claimed before an earlier batch failed: it must not overtake that one."""


class Turns:
    """Let batches claimed by several threads publish one at a time, in claim order.

    A thread claims under ``claim_lock`` and takes a ticket with ``ticket()``
    right away, then publishes inside ``turn(ticket)``. If a turn fails,
    every batch claimed before the failure is refused its turn
    (``TurnRefused``, a ``ConnectionLost``), so no batch overtakes one that will be retried.
    """

    def __init__(self) -> None:
        self.claim_lock = threading.Lock()
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._void_below = 0

    def ticket(self) -> int:
        """Return the next ticket (call while holding ``claim_lock``)."""
        with self._cond:
            self._issued += 1
            return self._issued - 1

    @contextlib.contextmanager
    def turn(self, ticket: int) -> Iterator[None]:
        """Wait for ``ticket``'s turn; hold it for the body."""
        with self._cond:
            self._cond.wait_for(lambda: self._serving == ticket)
            if ticket < self._void_below:
                self._next(ticket)
                raise TurnRefused("an earlier batch failed; this one is retried after it")
        done = False
        try:
            yield
            done = True
        finally:
            with self._cond:
                if not done:
                    self._void_below = self._issued
                self._next(ticket)

    def _next(self, ticket: int) -> None:
        self._serving = ticket + 1
        self._cond.notify_all()


def close_db_connections() -> None:
    """Close this thread's database connections (call at the end of a worker thread)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
