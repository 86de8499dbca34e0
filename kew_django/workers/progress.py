"""What a long handler gets beside its data: progress reports, cancellation, its commit.

A consumer declared with ``atomic=False`` is called as ``handler(data,
work)``; ``work`` is a ``Work``. Everything here runs on the worker's
thread (the handler's); the heartbeat thread only reads the progress and
sets the flags, and the runner sets the worker's stop event on SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

from kew.errors import KewError, PermanentError
from kew.message import Message
from kew_django.models import ProcessedMessage
from kew_django.workers.heartbeat import Heartbeat


class Cancelled(PermanentError):
    """An operator asked this message to stop; raised by ``Work.progress``.

    Catch it to clean up and record a "cancelled" outcome (then return:
    the message is acked). Left uncaught, the message is given up at once
    as a dead letter with reason ``cancelled`` (never retried).
    """


class Interrupted(BaseException):  # noqa: N818 - a signal to stop, as KeyboardInterrupt
    """The process is shutting down (SIGTERM, Ctrl-C); raised by ``Work.progress``.

    Not a failure and not a cancel: let it propagate. The message goes back
    to the queue without spending an attempt and runs again on another
    worker (or this one, restarted). It derives from ``BaseException``, as
    ``KeyboardInterrupt`` does, so that a handler's ``except Exception``
    does not take it for a failure; ``finally`` blocks still run.
    """


class LeaseLost(KewError):
    """The lease ran out (the heartbeat could not renew it) and another worker has the message.

    Raised by ``Work.progress`` and ``Work.commit``; do not catch it: the
    run stops without committing, and the other worker's run counts.
    """


class AlreadyProcessed(KewError):
    """``Work.commit`` found the message id recorded: its effect was committed before."""


class Work:
    """The running delivery of a long handler: report progress, learn of a cancel, commit."""

    def __init__(
        self,
        message: Message[Any],
        heartbeat: Heartbeat,
        *,
        using: str,
        record: bool,
        stopping: threading.Event | None = None,
    ):
        """``record``: whether ``commit`` records the origin id; ``stopping``: the worker's stop."""
        self.message = message
        self.heartbeat = heartbeat
        self.using = using
        self.committed = False
        self.recorded: ProcessedMessage | None = None
        self._record = record
        self._stopping = stopping

    @property
    def attempt(self) -> int:
        """Return the delivery count of this run (1 for the first delivery)."""
        return self.message.delivery_count

    @property
    def cancel_requested(self) -> bool:
        """Return whether an operator asked this message to stop (as of the last heartbeat)."""
        return self.heartbeat.cancelled.is_set()

    def progress(self, done: int | None, total: int | None = None, note: str = "") -> None:
        """Report how far the work got; cheap: no write, the next heartbeat writes the latest.

        Call it as often as you like (per file, per chunk). Raises
        ``Cancelled`` once an operator asked the message to stop,
        ``LeaseLost`` if another worker took it over, and ``Interrupted``
        once the process is shutting down.
        """
        self.heartbeat.report(done, total, note)
        self.heartbeat.maybe_beat()
        self.check()

    def check(self) -> None:
        """Raise ``LeaseLost``, ``Cancelled`` or ``Interrupted`` if the work must stop."""
        if self.heartbeat.lost.is_set():
            raise LeaseLost(f"message {self.heartbeat.message_id}: lease lost")
        if self.heartbeat.cancelled.is_set():
            raise Cancelled(f"message {self.heartbeat.message_id} was cancelled by an operator")
        if self._stopping is not None and self._stopping.is_set():
            raise Interrupted(f"message {self.heartbeat.message_id}: the worker is shutting down")

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Commit the handler's final writes in one short transaction, with the idempotency record.

        ``with work.commit(): ...`` opens ``transaction.atomic()``; for an
        ``idempotent=True`` consumer it first records the message's origin
        id, so the writes and the record commit together or not at all. If
        the id was recorded before (a redelivery after the effect
        committed), ``AlreadyProcessed`` is raised before the block runs:
        let it propagate, the worker acks the message as a duplicate.
        """
        if self.heartbeat.lost.is_set():
            raise LeaseLost(f"message {self.heartbeat.message_id}: lease lost")
        with transaction.atomic(using=self.using):
            if self._record and self.recorded is None:
                self.recorded = record_processed(self.heartbeat.queue, self.message, self.using)
            yield
        self.committed = True


def record_processed(queue: str, message: Message[Any], using: str) -> ProcessedMessage:
    """Record the message's origin id in the caller's transaction; AlreadyProcessed if known."""
    record = ProcessedMessage.objects.using(using).record(queue, message.origin_id or "")
    if record is None:
        raise AlreadyProcessed(f"message {message.origin_id} was processed before")
    return record
