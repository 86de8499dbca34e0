"""Publish batches claimed by several threads in the order they were claimed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from kew.errors import ConnectionLost


class EarlierBatchFailed(ConnectionLost):
    """A batch claimed before an earlier batch failed: it must not overtake that one."""


class PublishOrder:
    """Let batches claimed by several threads publish one at a time, in claim order.

    A thread claims under ``claim_lock`` and reserves its place with ``reserve()``
    right away, then publishes inside ``publishing(place)``. If a batch fails,
    every batch claimed before the failure is refused
    (``EarlierBatchFailed``, a ``ConnectionLost``), so no batch overtakes one that will be retried.
    """

    def __init__(self) -> None:
        self.claim_lock = threading.Lock()
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._void_below = 0

    def reserve(self) -> int:
        """Return the next place in the order (call while holding ``claim_lock``)."""
        with self._cond:
            self._issued += 1
            return self._issued - 1

    @contextlib.contextmanager
    def publishing(self, place: int) -> Iterator[None]:
        """Wait until every earlier place has published; hold the order for the body."""
        with self._cond:
            self._cond.wait_for(lambda: self._serving == place)
            if place < self._void_below:
                self._next(place)
                raise EarlierBatchFailed("an earlier batch failed; this one is retried after it")
        done = False
        try:
            yield
            done = True
        finally:
            with self._cond:
                if not done:
                    self._void_below = self._issued
                self._next(place)

    def _next(self, place: int) -> None:
        self._serving = place + 1
        self._cond.notify_all()
