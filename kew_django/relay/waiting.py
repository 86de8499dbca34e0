"""Wait for new outbox rows: a PostgreSQL notification, a stop request or a timeout."""

from __future__ import annotations

import threading
import time

from kew_django.db.notify import Listener


def wait(
    stop: threading.Event, seconds: float, listener: Listener | None = None, generation: int = 0
) -> None:
    """Wait ``seconds``, waking early on ``stop`` or (with a listener) a notification."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
        if listener is not None and listener.active:
            if listener.wait(None, generation, min(remaining, 0.25)):
                return
        else:
            stop.wait(min(remaining, 0.25))
