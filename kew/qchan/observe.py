"""What the queue engine tells an observer: loop turns and deliveries (metrics, traces, health).

The engine calls its observer on the worker's own thread (the one that
runs ``poll``/``run``), never a provider's I/O thread: an observer shared
by several workers must be thread-safe. The default observer does nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from kew.providers.base import Delivery
from kew.qchan.outcomes import DeliveryOutcome


@dataclass
class Handling:
    """One delivery being handled: the engine sets ``outcome`` when it is done."""

    queue: str
    delivery: Delivery
    outcome: DeliveryOutcome | None = None  # still None after: ``handle`` raised


class EngineObserver:
    """Observe an engine; override what you need (every hook defaults to nothing)."""

    def turned(self, queue: str) -> None:
        """Note that the loop of ``queue`` asks for its next delivery (it is alive)."""

    def handling(self, seen: Handling) -> AbstractContextManager[object]:
        """Return a context the delivery is handled in; ``seen.outcome`` is set inside it."""
        return nullcontext()


NO_OBSERVER = EngineObserver()
