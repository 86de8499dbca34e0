"""Hold one producer: opened on first use, dropped after a failure."""

from __future__ import annotations

import logging

from kew.providers.base import Producer, Provider

log = logging.getLogger(__name__)


class LazyProducer:
    """Keep a provider's producer for reuse, and replace it after it breaks.

    ``get()`` opens the producer on first use; ``drop()`` closes it (quietly:
    it is usually broken already) so that the next ``get()`` opens a new one.
    Not thread-safe: one slot per thread, or guard it with a lock.
    """

    def __init__(self, provider: Provider):
        self.provider = provider
        self._producer: Producer | None = None

    def get(self) -> Producer:
        """Return the producer, opening it if there is none."""
        if self._producer is None:
            self._producer = self.provider.producer()
        return self._producer

    def drop(self) -> None:
        """Close and forget the producer, if one is open."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close()
            except Exception:  # noqa: BLE001 - a broken producer may fail to close
                log.debug("closing a producer failed", exc_info=True)
