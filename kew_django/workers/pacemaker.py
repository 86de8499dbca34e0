"""One beating thread per worker, for whichever delivery the worker has in hand.

A worker handles one delivery at a time, so one thread can beat for all of
them: starting a thread per delivery cost more than a short handler's whole
transaction. The worker ``attach``es each delivery's ``Heartbeat`` before
its handler runs and ``detach``es it after the ack; in between, the
pacemaker's thread calls ``Heartbeat.beat()`` whenever one is due
(``Heartbeat.due()``). Short deliveries are detached before their first
beat and cost no write and no thread start.

Threads: ``attach``, ``detach`` and ``close`` are called on the worker's
thread; beats run on the pacemaker's own thread (started at the first
``attach``, daemon, its database connections closed when it ends).
``detach`` returns only once no beat of that heartbeat is running, so
nothing is written for a delivery after it is done.

Wake-ups: the thread sleeps until the next beat it knows of; ``attach``
wakes it only when the new heartbeat is due before that, and ``detach``
never does (the thread finds out when it wakes). A stream of short
deliveries so wakes it about once a heartbeat interval, not twice a
delivery (each wake-up took the GIL from the worker).
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING

from kew_django.db.connections import close_db_connections

if TYPE_CHECKING:
    from kew_django.workers.heartbeat import Heartbeat


class Pacemaker:
    """Beat the attached heartbeat when it is due, on a thread of its own."""

    def __init__(self, name: str):
        self.name = name
        self._cond = threading.Condition()
        self._current: Heartbeat | None = None
        self._beating: Heartbeat | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread's current wait ends (time.monotonic())
        self.wakeups = 0  # times the thread woke (diagnostics, tests)

    def attach(self, heartbeat: Heartbeat) -> None:
        """Beat ``heartbeat`` from now on, instead of any other."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"pacemaker {self.name} is closed")
            self._current = heartbeat
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            if heartbeat.due() < self._wake_at:  # else the thread wakes in time on its own
                self._cond.notify_all()

    def detach(self, heartbeat: Heartbeat) -> None:
        """Stop beating ``heartbeat``; wait for a beat of it in progress to end."""
        with self._cond:
            if self._current is heartbeat:
                self._current = None
            self._cond.wait_for(lambda: self._beating is not heartbeat)

    def close(self) -> None:
        """End the thread (after a beat in progress); ``attach`` is refused from now on."""
        with self._cond:
            self._closed = True
            self._current = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        try:
            with self._cond:
                while not self._closed:
                    heartbeat = self._current
                    if heartbeat is None:
                        self._sleep(math.inf)
                        continue
                    due = heartbeat.due()
                    if due > time.monotonic():
                        self._sleep(due)  # woken early by an attach due sooner, or close
                        continue
                    self._beating = heartbeat
                    self._cond.release()
                    try:
                        heartbeat.beat()  # never raises
                    finally:
                        self._cond.acquire()
                        self._beating = None
                        self._cond.notify_all()
        finally:
            close_db_connections()

    def _sleep(self, until: float) -> None:
        """Wait (holding ``_cond``) until ``until`` or a notification."""
        self._wake_at = until
        self._cond.wait(None if until == math.inf else max(0.0, until - time.monotonic()))
        self._wake_at = -math.inf  # awake: it reads ``_current`` before it sleeps again
        self.wakeups += 1
