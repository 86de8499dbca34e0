"""The hooks the relay and the workers call: one observer object, several parts behind it.

``Observer`` adds the relay's hooks to the engine's (``kew.qchan.observe``);
every hook does nothing by default. ``Observers`` calls several in turn
(metrics, traces, liveness). Hooks run on the relay's and the workers'
own threads, several at once: implementations must be thread-safe, and
cheap, since they run for every batch and every delivery.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

from kew.qchan.observe import EngineObserver, Handling


class Observer(EngineObserver):
    """Observe a relay and the workers of one process (hooks default to nothing)."""

    def relay_turned(self) -> None:
        """Note that a relay thread goes round its loop (it is alive)."""

    def publishing(self, rows: Sequence[Any]) -> AbstractContextManager[object]:
        """Return a context the relay publishes ``rows`` (outbox rows) in; errors propagate."""
        return nullcontext()

    def published(self, rows: Sequence[Any]) -> None:
        """Count ``rows`` as published: the provider confirmed them and they are marked sent."""

    def rejected(self, row: Any, *, failed: bool) -> None:
        """Count a rejection of ``row``; ``failed``: it will not be tried again."""

    def relay_paused(self, reason: str) -> None:
        """Note that the broker holds the relay's publishes back (flow control)."""

    def relay_resumed(self, seconds: float) -> None:
        """Note that the broker accepts again, after ``seconds`` paused."""

    def limit_refused(self, limit: str, reason: str) -> None:
        """Count a start that ``limit`` refused (``reason``: a ``limits.store.Refusal`` value)."""

    def limit_waited(self, limit: str, seconds: float) -> None:
        """Note that a message started after waiting ``seconds`` for ``limit``."""


class Observers(Observer):
    """Call each of ``parts`` in turn."""

    def __init__(self, parts: Sequence[Observer]):
        self.parts = list(parts)

    def turned(self, queue: str) -> None:
        for part in self.parts:
            part.turned(queue)

    @contextmanager
    def _all(self, contexts: list[AbstractContextManager[object]]) -> Iterator[None]:
        with ExitStack() as stack:
            for context in contexts:
                stack.enter_context(context)
            yield

    def handling(self, seen: Handling) -> AbstractContextManager[object]:
        return self._all([part.handling(seen) for part in self.parts])

    def relay_turned(self) -> None:
        for part in self.parts:
            part.relay_turned()

    def publishing(self, rows: Sequence[Any]) -> AbstractContextManager[object]:
        return self._all([part.publishing(rows) for part in self.parts])

    def published(self, rows: Sequence[Any]) -> None:
        for part in self.parts:
            part.published(rows)

    def rejected(self, row: Any, *, failed: bool) -> None:
        for part in self.parts:
            part.rejected(row, failed=failed)

    def relay_paused(self, reason: str) -> None:
        for part in self.parts:
            part.relay_paused(reason)

    def relay_resumed(self, seconds: float) -> None:
        for part in self.parts:
            part.relay_resumed(seconds)

    def limit_refused(self, limit: str, reason: str) -> None:
        for part in self.parts:
            part.limit_refused(limit, reason)

    def limit_waited(self, limit: str, seconds: float) -> None:
        for part in self.parts:
            part.limit_waited(limit, seconds)


NO_OBSERVER = Observer()
