"""Exponential back-off with jitter, for loops that wait out an outage."""

from __future__ import annotations

import logging
import random
import time

log = logging.getLogger(__name__)


class Backoff:
    """Exponential back-off with jitter; logs once per change of state. Thread-safe enough."""

    def __init__(
        self,
        maximum: float,
        *,
        first: float = 0.5,
        what: str = "broker",
        logger: logging.Logger | None = None,
    ):
        self.maximum = maximum
        self.first = first
        self.what = what
        self.failures = 0
        self.since: float | None = None
        self.log = logger or log

    def failed(self, error: Exception) -> None:
        """Count a failure; the first of a run is logged."""
        if self.failures == 0:
            self.since = time.monotonic()
            self.log.warning(
                "%s unavailable (%s); backing off, delivery counts unchanged", self.what, error
            )
        self.failures += 1

    def succeeded(self) -> None:
        """End a run of failures, logging how long it lasted."""
        if self.failures:
            down = time.monotonic() - (self.since or time.monotonic())
            self.log.warning("%s available again after %.1fs", self.what, down)
        self.failures = 0

    def delay(self) -> float:
        """Return how long to wait before the next try."""
        ceiling = min(self.maximum, self.first * 2 ** min(max(self.failures, 1) - 1, 16))
        return random.uniform(ceiling / 2, ceiling)
