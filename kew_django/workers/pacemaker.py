"""One beating thread per worker, for whichever delivery the worker has in hand.

A worker handles one delivery at a time, so one thread can beat for all of
them: starting a thread per delivery cost more than a short handler's whole
transaction. The worker ``attach``es each delivery's heartbeat (its
``beat`` and ``due`` callables) before its handler runs and ``detach``es
it after the ack; in between, the pacemaker's thread calls ``beat()``
whenever ``due()`` has passed. Short deliveries are detached before their first
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
from collections.abc import Callable

from kew_django.db.connections import close_db_connections

Beat = Callable[[], None]  # one beat; never raises
Due = Callable[[], float]  # when the next beat is due, in time.monotonic()


class Pacemaker:
    """Beat the attached heartbeat when it is due, on a thread of its own."""

    def __init__(self, name: str):
        self.name = name
        self._cond = threading.Condition()
        self._current: tuple[Beat, Due] | None = None
        self._beating: Beat | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread's current wait ends (time.monotonic())
        self.wakeups = 0  # times the thread woke (diagnostics, tests)
        self.alarms = 0  # times ``attach`` woke it early (tests wait until each is taken)

    def attach(self, beat: Beat, due: Due) -> None:
        """Call ``beat`` whenever ``due()`` has passed, from now on, instead of any other."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"pacemaker {self.name} is closed")
            self._current = (beat, due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            if due() < self._wake_at:  # else the thread wakes in time on its own
                self.alarms += 1
                self._cond.notify_all()

    def detach(self, beat: Beat) -> None:
        """Stop calling ``beat``; wait for a call of it in progress to end.

        ``beat`` is compared with ``==``: a bound method equals another one of
        the same method and object, so ``detach(heartbeat.beat)`` works.
        """
        with self._cond:
            if self._current is not None and self._current[0] == beat:
                self._current = None
            self._cond.wait_for(lambda: self._beating != beat)

    def asleep_until(self) -> float:
        """Return when the thread's current wait ends (``-inf`` while awake); tests wait on it."""
        with self._cond:
            return self._wake_at

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
                    if self._current is None:
                        self._sleep(math.inf)
                        continue
                    beat, due = self._current
                    next_beat = due()
                    if next_beat > time.monotonic():
                        self._sleep(next_beat)  # woken early by an attach due sooner, or close
                        continue
                    self._beating = beat
                    self._cond.release()
                    try:
                        beat()  # never raises
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
