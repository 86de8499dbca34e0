"""Wait for new outbox rows: a PostgreSQL notification, a stop request or a timeout."""

from __future__ import annotations

import threading
import time

from kew_django.db.notify import Listener


def wait(stop: threading.Event, seconds: float, listener: Listener | None = None) -> None:
    """Wait ``seconds``, waking early on ``stop`` or (with a listener) a new notification.

    With a listener, one waiting thread takes each notification that no
    look for work has covered yet (``Listener.wait_unseen``); call
    ``listener.looking()`` before each look.
    """
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
        if listener is not None and listener.active:
            if listener.wait_unseen(min(remaining, 0.25)):
                return
        else:
            stop.wait(min(remaining, 0.25))
