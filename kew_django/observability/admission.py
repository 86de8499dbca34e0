"""Admissions refused at the door (503 or 429), counted per queue and reason.

``refusals`` is a module-level handler, as Django's ``caches``: the web
views that refuse work call ``refusals.refused``; the web process's
metrics view (``views.metrics``) serves the counts as the counter
``kew_admissions_refused_total``. Counts belong to one process.
"""

from __future__ import annotations

import threading

BACKLOG = "backlog"  # the queue's backlog is over its bound: 503
PER_KEY = "per_key"  # one key (a user) has too much pending already: 429


class Refusals:
    """Count refused admissions by (queue, reason); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def refused(self, queue: str, reason: str) -> None:
        """Count one request for ``queue`` refused for ``reason`` (``BACKLOG``, ``PER_KEY``)."""
        with self._lock:
            key = (queue, reason)
            self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[tuple[str, str], int]:
        """Return a copy of the counts so far."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        """Forget every count (tests)."""
        with self._lock:
            self._counts.clear()


refusals = Refusals()
