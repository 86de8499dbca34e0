"""Wake waiting workers on PostgreSQL NOTIFY; other databases poll.

The migration ``0002_notify_triggers`` makes PostgreSQL send
``kew_outbox`` on each insert into the outbox and ``kew_queue`` (payload:
the queue name) when a queued message becomes available. A ``Listener``
holds one connection of its own, LISTENs on a background thread and
wakes the threads waiting in ``wait``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from django.db import connections

log = logging.getLogger(__name__)

OUTBOX = "kew_outbox"
QUEUE = "kew_queue"


class Listener:
    """Count the notifications of one channel, per payload, and wake waiters.

    Waiters read ``generation(key)`` before looking for work and call
    ``wait(key, generation, timeout)`` if they found none, so a
    notification that arrives in between is not missed. ``active`` is
    False on databases without LISTEN/NOTIFY; ``wait`` then just sleeps.

    Threads that are interchangeable (the relay's, each claiming whatever
    is pending) share one baseline instead: each calls ``looking()`` just
    before it looks for work, and ``wait_unseen(timeout)`` when it found
    too little. A notification wakes one of them, which takes it; the
    others sleep on, since the look it triggers covers them too. Every
    notification is followed by a look that began after it.
    """

    def __init__(self, channel: str, *, using: str = "default"):
        self.channel = channel
        self.using = using
        self.active = connections[using].vendor == "postgresql"
        self._counts: Counter[str | None] = Counter()
        self._seen = 0  # notifications (any key) that a look has begun after
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Read by tests, which wait on these conditions instead of sleeping.
        self.listening = threading.Event()  # LISTEN is in effect
        self._waiting = 0  # threads in ``wait_unseen`` right now

    def start(self) -> Listener:
        """Start listening, once; return self."""
        if self.active and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"kew-listen-{self.channel}", daemon=True
            )
            self._thread.start()
        return self

    def generation(self, key: str | None = None) -> int:
        """Return how many notifications for ``key`` (None: any) have arrived so far."""
        with self._cond:
            return self._counts[key]

    def wait(self, key: str | None, generation: int, timeout: float) -> bool:
        """Wait up to ``timeout`` for a notification after ``generation``; return if one came."""
        if not self.active:
            self._stop.wait(timeout)
            return False
        with self._cond:
            return self._cond.wait_for(lambda: self._counts[key] != generation, timeout)

    def looking(self) -> None:
        """Say that a look for work begins now: it covers every notification so far."""
        with self._cond:
            self._seen = self._counts[None]

    def wait_unseen(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a notification no look has covered; take it if one came."""
        if not self.active:
            self._stop.wait(timeout)
            return False
        with self._cond:
            self._waiting += 1
            try:
                if not self._cond.wait_for(lambda: self._counts[None] != self._seen, timeout):
                    return False
            finally:
                self._waiting -= 1
            self._seen = self._counts[None]
            return True

    def idle(self, threads: int) -> bool:
        """Return whether it listens and ``threads`` threads wait with no notification unseen.

        Then the next claim is a notification's (or a poll's): tests wait on this.
        """
        with self._cond:
            unseen = self._counts[None] != self._seen
            return self.listening.is_set() and self._waiting >= threads and not unseen

    def close(self) -> None:
        """Stop the listening thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._listen()
                delay = 0.5
            except Exception as error:  # noqa: BLE001 - a lost connection; waiters poll meanwhile
                log.warning("LISTEN %s failed (%s); retrying in %.1fs", self.channel, error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _listen(self) -> None:
        import psycopg

        params = connections[self.using].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f"LISTEN {self.channel}")
            self._bump(None)  # anything missed while not listening
            self.listening.set()
            try:
                while not self._stop.is_set():
                    for notify in conn.notifies(timeout=1.0):
                        self._bump(notify.payload or None)
                        if self._stop.is_set():
                            break
            finally:
                self.listening.clear()

    def _bump(self, key: str | None) -> None:
        with self._cond:
            self._counts[None] += 1
            if key is not None:
                self._counts[key] += 1
            self._cond.notify_all()  # waiters on other keys, or whose look covered it, sleep on
