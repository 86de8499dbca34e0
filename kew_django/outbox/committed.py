"""The process's publisher of the outbox rows it committed (publishing on commit).

``CommitPublisher.hand`` takes rows whose transaction has just committed,
as they are in memory, and returns at once; a daemon thread publishes them
in batches through a ``Relay`` of its own (``Relay.publish_rows``: the
relay's confirmed publish and rejection handling, then one statement that
marks them sent). A row is published twice only if the process dies
between the broker's confirmation and that mark, or if the relay takes it
(at ``GRACE``) while it is being published: a duplicate, absorbed as a
relay's re-send is (docs/guarantees.md#publishing-on-commit).

A batch it cannot publish (broker down, blocked or refusing, database
failing) is given up to the relay, which takes such rows once they are
``GRACE`` old, and so are the rows handed for ``COOL_DOWN`` seconds after,
those waiting longer than half the grace, and those beyond ``LIMIT``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django.db import connections

from kew.errors import ConfigurationError
from kew_django.conf import section
from kew_django.db.connections import close_db_connections

log = logging.getLogger(__name__)

COOL_DOWN = 1.0  # seconds after a failed batch during which new rows are left to the relay
LIMIT = 10_000  # rows waiting in memory at most; more are left to the relay
IDLE = 30.0  # seconds without a row before the thread closes its connections and ends


class RowRelay(Protocol):
    """What the publisher needs of a relay (``kew_django.relay.publisher.Relay``)."""

    stats: Any

    def publish_rows(self, rows: Sequence[Any]) -> int: ...

    def close(self) -> None: ...


RelayFactory = Callable[[str, str], RowRelay]  # (provider alias, database alias) -> relay


class CommitPublisher:
    """Publish the committed rows of provider ``alias`` in database ``using``; thread-safe."""

    def __init__(
        self,
        alias: str,
        using: str,
        *,
        grace: float,
        relays: RelayFactory | None = None,
        limit: int = LIMIT,
    ):
        self.alias, self.using, self.grace, self.limit = alias, using, grace, limit
        self.relays = relays  # makes the thread's relay on its first batch
        self.batch_size = int(section("RELAY")["BATCH_SIZE"])
        self.left = 0  # rows left to the relay so far
        self.published = 0  # rows published (confirmed) and marked sent so far
        self._cond = threading.Condition()
        self._waiting: deque[tuple[float, Any]] = deque()  # (monotonic time handed, row)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._pid = os.getpid()
        self._resume_at = 0.0  # monotonic time before which new rows are left to the relay
        self._failing = False  # a failure was logged and no batch went through since

    def hand(self, rows: list[Any]) -> None:
        """Queue committed outbox ``rows`` to publish; never waits for the broker or database."""
        now = time.monotonic()
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._thread = os.getpid(), None
                self._waiting.clear()
            if now < self._resume_at or len(self._waiting) + len(rows) > self.limit:
                self.left += len(rows)
                return
            self._waiting.extend((now, row) for row in rows)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"kew-publish-{self.alias}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Publish what waits (for up to ``timeout`` seconds), then end the thread."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._closing = False
            if self._thread is not None and not self._thread.is_alive():
                self._thread = None

    def _take(self) -> list[Any] | None:
        """Wait for rows and take a batch (stale ones left to the relay); None: idle or closing."""
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._closing, IDLE)
            if not self._waiting:
                self._thread = None  # the next hand starts another, with a relay of its own
                return None
            stale = time.monotonic() - self.grace / 2
            while self._waiting and self._waiting[0][0] < stale:
                self._waiting.popleft()
                self.left += 1
            count = min(self.batch_size, len(self._waiting))
            return [self._waiting.popleft()[1] for _ in range(count)]

    def _run(self) -> None:
        relay: RowRelay | None = None  # this thread's, made on its first batch
        try:
            while (rows := self._take()) is not None:
                if rows:
                    relay = self._publish(rows, relay)
        finally:
            if relay is not None:
                relay.close()
            close_db_connections()

    def _publish(self, rows: list[Any], relay: RowRelay | None) -> RowRelay | None:
        """Publish ``rows`` or leave them to the relay; return the thread's relay."""
        if time.monotonic() < self._resume_at:
            self._leave(len(rows))
            return relay
        try:
            relay = relay or self._make_relay()
            before = relay.stats.sent
            relay.publish_rows(rows)
            self.published += relay.stats.sent - before
        except Exception as error:  # noqa: BLE001 - whatever it is, the relay takes the rows
            self._give_up(rows, error, relay)
            return relay
        if self._failing:
            self._failing = False
            log.warning("kew: publishing on commit to %r goes through again", self.alias)

        return relay

    def _leave(self, count: int) -> None:
        with self._cond:
            self.left += count

    def _give_up(self, rows: list[Any], error: Exception, relay: RowRelay | None) -> None:
        self._leave(len(rows))
        self._resume_at = time.monotonic() + COOL_DOWN
        if relay is not None:
            relay.close()  # its producer: the next batch opens a new one
        connections[self.using].close_if_unusable_or_obsolete()
        if not self._failing:
            self._failing = True
            log.warning(
                "kew: publishing on commit to %r failed (%s: %s); its rows are left to the "
                "relay, which takes them once %gs old",
                self.alias,
                type(error).__name__,
                error,
                self.grace,
            )

    def _make_relay(self) -> RowRelay:
        if self.relays is None:
            raise ConfigurationError("no relay for publishing on commit: is kew_django installed?")
        return self.relays(self.alias, self.using)


class CommitPublishers:
    """One ``CommitPublisher`` per (provider alias, database alias), made on first use."""

    def __init__(self) -> None:
        self._publishers: dict[tuple[str, str], CommitPublisher] = {}
        self._lock = threading.Lock()
        self._at_exit: Any = None
        self.relays: RelayFactory | None = None  # set by ``apps``: ``relay.senders.sender_relay``
        self.observer: Any = None  # the process's observer while ``Observability`` runs (metrics)

    def get(self, alias: str, using: str, *, grace: float) -> CommitPublisher:
        """Return the publisher of ``alias`` and ``using``, with ``grace`` as its grace."""
        key = (alias, using)
        publisher = self._publishers.get(key)
        if publisher is None:
            with self._lock:
                if not self._at_exit:  # a process that exits publishes what waits first
                    self._at_exit = atexit.register(self.close_all)
                publisher = self._publishers.setdefault(
                    key, CommitPublisher(*key, grace=grace, relays=self.relays)
                )
        publisher.grace = grace
        return publisher

    def flush(self, timeout: float = 5.0) -> int:
        """Publish what waits in every publisher now; return how many rows went (tests, drain)."""
        with self._lock:
            publishers = list(self._publishers.values())
        published = 0
        for publisher in publishers:
            before = publisher.published
            publisher.close(timeout)
            published += publisher.published - before
        return published

    def close_all(self, timeout: float = 5.0) -> None:
        """Publish what waits, end every publisher's thread and forget the publishers."""
        with self._lock:
            publishers, self._publishers = list(self._publishers.values()), {}
        for publisher in publishers:
            publisher.close(timeout)


commit_publishers = CommitPublishers()
