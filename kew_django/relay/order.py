"""Publish batches claimed by several threads in the order they were claimed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from kew.errors import ConnectionLost


class EarlierBatchFailed(ConnectionLost):
    """A batch claimed before an earlier batch failed: it must not overtake that one."""


class HeldBack(EarlierBatchFailed):
    """A batch claimed after one whose last rows went back to pending: claim again, in order."""


class PublishOrder:
    """Let batches claimed by several threads publish one at a time, in claim order.

    A thread reads ``epoch()``, claims under ``claim_lock`` and reserves its
    place with ``reserve(epoch)`` right away, then publishes inside
    ``publishing(place)``, and calls ``settled(place)`` once its transaction
    committed or rolled back. If a batch fails, every batch claimed before
    the failure is refused (``EarlierBatchFailed``, a ``ConnectionLost``), so
    no batch overtakes one that will be retried.

    A batch whose rows will go back to pending (it failed, was refused, or
    ``hold_back_later`` after a rejection) is *in limbo* until settled: its
    rows are locked, and a claim made meanwhile skips them. Such a claim is
    refused too (``HeldBack``: roll back and claim again), so no batch
    overtakes rows that are about to be pending again.
    """

    def __init__(self) -> None:
        self.claim_lock = threading.Lock()
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0
        self._void_below = 0
        self._held = False  # the refusals are for rows going back to pending, not a failure
        self._limbo: set[int] = set()  # places whose rows go back to pending when settled
        self._events = 0  # changes of ``_limbo`` so far

    def epoch(self) -> int:
        """Return a mark to read before claiming and to give to ``reserve``."""
        with self._cond:
            return self._events

    def reserve(self, epoch: int | None = None) -> int:
        """Return the next place in the order (call while holding ``claim_lock``).

        If a batch was in limbo at any time since ``epoch``, the claim may
        have skipped its locked rows: this batch is refused too.
        """
        with self._cond:
            self._issued += 1
            if self._limbo or (epoch is not None and epoch != self._events):
                self._void_below, self._held = self._issued, True
            return self._issued - 1

    @contextlib.contextmanager
    def publishing(self, place: int) -> Iterator[None]:
        """Wait until every earlier place has published; hold the order for the body."""
        with self._cond:
            self._cond.wait_for(lambda: self._serving == place)
            if place < self._void_below:
                self._enter_limbo(place)
                self._next(place)
                if self._held:
                    raise HeldBack("rows of an earlier batch are pending again; claiming anew")
                raise EarlierBatchFailed("an earlier batch failed; this one is retried after it")
        done = False
        try:
            yield
            done = True
        finally:
            with self._cond:
                if not done:
                    self._enter_limbo(place)
                    self._void_below, self._held = self._issued, False
                self._next(place)

    def hold_back_later(self, place: int) -> None:
        """Refuse the batches claimed after ``place`` until it is settled (``HeldBack``).

        Call inside ``publishing`` when rows of this batch go back to pending
        (after a rejection).
        """
        with self._cond:
            self._enter_limbo(place)
            if self._void_below < self._issued:
                self._void_below, self._held = self._issued, True

    def settled(self, place: int) -> None:
        """Say that the transaction of ``place`` committed or rolled back."""
        with self._cond:
            if place in self._limbo:
                self._limbo.discard(place)
                self._events += 1

    def _enter_limbo(self, place: int) -> None:
        if place not in self._limbo:
            self._limbo.add(place)
            self._events += 1

    def _next(self, place: int) -> None:
        self._serving = place + 1
        self._cond.notify_all()
