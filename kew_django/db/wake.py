"""Wake listeners after a commit, with a NOTIFY from a connection of Kew's own.

PostgreSQL takes a cluster-wide lock at the commit of any transaction
that holds a NOTIFY and keeps it through the commit's WAL flush, so a
NOTIFY inside the sender's transaction serialises every such commit.
Senders call ``wake_on_commit`` instead: once the transaction commits
(never if it rolls back) the process's ``Notifier`` for that database
sends the NOTIFY. The first wake after a quiet spell (``GAP``) goes at
once, on the sender's own connection, in a statement of its own after
the commit (one round trip in the sender's thread, no hand-off); wakes
that follow within ``GAP`` are coalesced: a daemon thread sends one NOTIFY
per (channel, payload), in one statement, on a connection of its own.
Neither NOTIFY waits for a WAL flush. A process that dies between the
commit and the NOTIFY loses the wake, not the row: listeners poll (the
relay's and the database provider's ``poll_interval``).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from django.db import connections, transaction

log = logging.getLogger(__name__)

IDLE = 30.0  # seconds without a wake before the notifier closes its connection
GAP = 0.002  # seconds from one round's start to the next: wakes meanwhile share a round
SEND = "SELECT pg_notify(c, p) FROM unnest(%s::text[], %s::text[]) AS wake(c, p)"
# A NOTIFY has nothing to make durable: its commit need not wait for the WAL flush
# (and so holds PostgreSQL's notify lock only briefly).
SEND_NOW = (
    "SELECT pg_notify(%s, %s) FROM (SELECT set_config('synchronous_commit', 'off', true)) AS s"
)


class Notifier:
    """Send coalesced NOTIFYs for database ``using`` from a daemon thread; thread-safe.

    ``wake`` never blocks on the database and never raises for it: a
    failed round is logged and its wakes are dropped (listeners poll).
    The connection is opened on the first wake and closed after ``IDLE``
    seconds without one, or by ``close``.
    """

    def __init__(self, using: str):
        self.using = using
        self._cond = threading.Condition()
        self._pending: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._pid = os.getpid()
        self._callbacks: dict[tuple[str, str], _Wake] = {}
        self._sent_at = -math.inf  # time.monotonic() of the last round or NOTIFY sent at once

    def wake(self, channel: str, payload: str = "") -> None:
        """Send NOTIFY ``channel`` with ``payload`` soon, once however often it is asked.

        The first wake after ``GAP`` without one is sent at once on the
        calling thread's connection to ``using`` (when it is in no
        transaction); the others go to the notifier's thread.
        """
        with self._cond:
            now = time.monotonic()
            at_once = not self._pending and now - self._sent_at >= GAP
            if at_once:
                self._sent_at = now
        if at_once and self._send_now(channel, payload):
            return
        self._hand_over(channel, payload)

    def _send_now(self, channel: str, payload: str) -> bool:
        """Send the NOTIFY on this thread's connection; False if it cannot (the thread's does)."""
        connection = connections[self.using]
        if connection.in_atomic_block:
            return False
        try:
            with connection.cursor() as cursor:
                cursor.execute(SEND_NOW, [channel, payload])
        except Exception as error:  # noqa: BLE001 - the notifier's own connection tries next
            log.debug("NOTIFY on the sender's connection failed (%s); handed over", error)
            return False
        return True

    def _hand_over(self, channel: str, payload: str) -> None:
        with self._cond:
            if self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._pid, self._thread = os.getpid(), None
            self._pending.add((channel, payload))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"kew-notify-{self.using}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def callback(self, channel: str, payload: str) -> _Wake:
        """Return the one on-commit callback that wakes (``channel``, ``payload``)."""
        key = (channel, payload)
        found = self._callbacks.get(key)
        if found is None:
            with self._cond:
                found = self._callbacks.setdefault(key, _Wake(self, channel, payload))
        return found

    def close(self) -> None:
        """Send what is pending, then close the connection and end the thread."""
        with self._cond:
            thread, self._closing = self._thread, True
            self._cond.notify()
        if thread is not None:
            thread.join(5)
        with self._cond:
            self._closing, self._thread = False, None

    def _take(self) -> list[tuple[str, str]] | None:
        """Wait for wakes and take them; None when idle too long or closing."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._closing, IDLE)
            wakes, self._pending = sorted(self._pending), set()
            if not wakes:
                self._thread = None  # the next wake starts another
                return None
            return wakes

    def _run(self) -> None:
        connection = None
        try:
            while (wakes := self._take()) is not None:
                started = time.monotonic()
                try:
                    connection = connection or self._connect()
                    connection.execute(SEND, ([c for c, _ in wakes], [p for _, p in wakes]))
                    with self._cond:
                        self._sent_at = max(self._sent_at, started)
                    time.sleep(max(0.0, started + GAP - time.monotonic()))
                except Exception as error:  # noqa: BLE001 - a lost connection: listeners poll
                    log.warning("NOTIFY on %r failed (%s); listeners poll", self.using, error)
                    if connection is not None:
                        connection.close()
                    connection = None
        finally:
            if connection is not None:
                connection.close()

    def _connect(self):
        import psycopg

        params = connections[self.using].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        connection = psycopg.connect(**params, autocommit=True)
        connection.execute("SET synchronous_commit = off")  # as SEND_NOW's
        return connection


class NotifierHandler:
    """One ``Notifier`` per database alias, made on first use; thread-safe."""

    def __init__(self) -> None:
        self._notifiers: dict[str, Notifier] = {}
        self._lock = threading.Lock()

    def __getitem__(self, using: str) -> Notifier:
        with self._lock:
            notifier = self._notifiers.get(using)
            if notifier is None:
                notifier = self._notifiers[using] = Notifier(using)
            return notifier

    def close_all(self) -> None:
        """Close every notifier's connection (their next wake opens a new one)."""
        with self._lock:
            notifiers = list(self._notifiers.values())
        for notifier in notifiers:
            notifier.close()


notifiers = NotifierHandler()


class _Wake:
    """An on-commit callback that wakes (channel, payload); one per notifier and key."""

    def __init__(self, notifier: Notifier, channel: str, payload: str):
        self.notifier, self.channel, self.payload = notifier, channel, payload

    def __call__(self) -> None:
        self.notifier.wake(self.channel, self.payload)


def wake_on_commit(channel: str, payload: str = "", *, using: str) -> None:
    """Have the listeners of ``channel`` woken once the current transaction of ``using`` commits.

    Outside a transaction (autocommit) the wake is sent at once. Registered
    once per transaction and (channel, payload), however many rows are
    written; dropped if the transaction (or the savepoint it was asked
    in) rolls back. Only PostgreSQL listens; elsewhere it does nothing.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    wake = notifiers[using].callback(channel, payload)
    if connection.in_atomic_block and any(entry[1] is wake for entry in connection.run_on_commit):
        return
    transaction.on_commit(wake, using=using, robust=True)  # a commit never fails for a wake
