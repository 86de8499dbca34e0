"""The relay's pause while the broker pushes back (flow control), shared by its threads.

A publish that raises ``BrokerBlocked`` pauses the relay: one warning
when the pause starts, one when a publish goes through again, and the
observer told both times (``relay_paused``, ``relay_resumed``). Rows wait
in the outbox meanwhile; the pause spends no attempt and fails no row.
"""

from __future__ import annotations

import logging
import threading
import time

from kew.errors import BrokerBlocked
from kew_django.observability.observer import Observer

PROBE = 1.0  # seconds between tries while paused; each try itself waits for the confirmation


class Pause:
    """Whether the relay is paused by its broker, since when; thread-safe. Logs to ``log``."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._lock = threading.Lock()
        self.since: float | None = None  # monotonic time the pause began; None: not paused
        self.total = 0.0  # seconds paused so far, over every pause that ended

    @property
    def paused(self) -> bool:
        """Return whether the relay is paused now."""
        return self.since is not None

    def blocked(self, error: BrokerBlocked, observer: Observer) -> float:
        """Note a publish held back by the broker; return how long to wait before the next."""
        with self._lock:
            if self.since is not None:
                return PROBE
            self.since = time.monotonic()
        self.log.warning(
            "relay paused: the broker is holding publishers back (%s); rows wait in the outbox, "
            "no attempt is spent, it resumes by itself",
            error,
        )
        observer.relay_paused(str(error))
        return PROBE

    def accepted(self, observer: Observer) -> None:
        """Note a publish the broker took; ends a pause (logged once, with its length)."""
        if self.since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self.since is None:
                return
            seconds, self.since = time.monotonic() - self.since, None
            self.total += seconds
        self.log.warning("relay resumed: the broker accepts again after %.1fs paused", seconds)
        observer.relay_resumed(seconds)
