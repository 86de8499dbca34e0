"""The heartbeat of a running delivery: renew its lease, publish its state, hear a cancel.

While a worker handles a delivery, its ``Pacemaker`` (one thread per
worker, ``workers.pacemaker``) beats every ``interval`` seconds
(``KEW["CONSUMERS"]["HEARTBEAT"]``, 5 s by default, at most a third of
the provider's lease). Each beat is one short write
transaction: ``Delivery.renew()`` (the database provider moves the lease
end; brokers need nothing), and an UPDATE of the delivery's
``InProgress`` row (last heartbeat, the latest progress) that also reads
whether an operator asked it to stop. On SQLite that is one short write,
so the web and the relay never wait longer than that.

Short handlers never write a row: it is created at the first beat (or at
once for ``atomic=False`` consumers, whose work is known to be long) and
deleted when the delivery is done. Inside an outer transaction (a test's,
``kew_django.testing``) there is no thread: ``maybe_beat`` beats on the
handler's own thread, at the handler's progress reports.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from django.db import connections, transaction
from django.db.models.functions import Now
from django.utils import timezone

from kew.message import Message
from kew.providers.base import Delivery
from kew.providers.headers import delivery_count
from kew_django.identity import worker_id
from kew_django.models import InProgress
from kew_django.workers.pacemaker import Pacemaker

log = logging.getLogger(__name__)
NOTE_LENGTH = 200


class Heartbeat:
    """Beat for one delivery until ``stop``; flags ``cancelled`` and ``lost`` for the handler."""

    def __init__(self, delivery: Delivery, *, queue: str, using: str, interval: float):
        self.delivery = delivery
        self.queue = queue
        self.using = using
        origin = Message(None, message_id=delivery.message_id).origin_id
        self.message_id = (origin or f"#{uuid.uuid4().hex}")[:64]
        self.attempt = delivery_count(delivery)
        self.interval = min(interval, delivery.lease / 3) if delivery.lease else interval
        self.worker = worker_id()
        self.started_at = timezone.now()
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.beats = 0
        self._progress: tuple[int | None, int | None, str] = (None, None, "")
        self._row_pk: int | None = None
        self._pacemaker: Pacemaker | None = None
        self._own_pacemaker: Pacemaker | None = None
        self._inline = connections[using].in_atomic_block
        self._last = time.monotonic()
        self._finishing = False

    def start(self, *, eager: bool = False, pacemaker: Pacemaker | None = None) -> Heartbeat:
        """Start beating; ``eager`` writes the state row now, on the caller's thread.

        Beats run on ``pacemaker``'s thread (the worker's); without one, on
        a pacemaker of this heartbeat's own, closed by ``stop``.
        """
        if eager:
            self.beat(renew=False)
        if not self._inline:
            if pacemaker is None:
                pacemaker = self._own_pacemaker = Pacemaker(f"kew-heartbeat-{self.queue}")
            self._pacemaker = pacemaker
            pacemaker.attach(self.beat, self.due)
        return self

    def due(self) -> float:
        """Return when (``time.monotonic()``) the next beat is due."""
        return self._last + self.interval

    def report(self, done: int | None, total: int | None, note: str) -> None:
        """Keep the latest progress in memory (no write: the next beat writes it)."""
        self._progress = (done, total, note[:NOTE_LENGTH])

    def maybe_beat(self) -> None:
        """Beat now if one is due and there is no thread to do it (an outer transaction)."""
        if self._inline and time.monotonic() - self._last >= self.interval:
            self.beat()

    def finishing(self) -> None:
        """Skip beats from now on: the ack is being written in the handler's transaction.

        A beat that was waiting on that transaction's lock then finds the row
        gone without taking the lease as lost, and writes no state row.
        """
        self._finishing = True

    def beat(self, *, renew: bool = True) -> None:
        """Renew the lease and write the state, in one short transaction; never raises."""
        self._last = time.monotonic()
        if self._finishing:
            return
        try:
            with transaction.atomic(using=self.using):
                if renew and not self.delivery.renew():
                    if self._finishing:
                        return
                    self._lose()
                cancel = self._write()
        except Exception as error:  # noqa: BLE001 - a missed beat is retried at the next one
            log.warning(
                "%s: heartbeat of message %s failed: %s", self.queue, self.message_id, error
            )
            connection = connections[self.using]
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
            return
        self.beats += 1
        if cancel and not self.cancelled.is_set():
            log.info("%s: message %s was asked to stop", self.queue, self.message_id)
            self.cancelled.set()

    def _write(self) -> bool:
        """Write the state row (created on the first beat); return whether a cancel was asked."""
        done, total, note = self._progress
        # the database's clock, as the sweep that reads it: a host's skew never makes it stale
        fields = {"heartbeat_at": Now(), "done": done, "total": total, "note": note}
        rows = InProgress.objects.using(self.using)
        if self._row_pk is None:
            row, _ = rows.update_or_create(
                queue=self.queue,
                message_id=self.message_id,
                defaults={
                    **fields,
                    "attempt": self.attempt,
                    "worker": self.worker,
                    "started_at": self.started_at,
                },
            )
            self._row_pk = row.pk
            return row.cancel_requested_at is not None
        if not rows.filter(pk=self._row_pk).update(**fields):
            self._row_pk = None  # cleared as a dead worker's (beats failed a while): write again
            return self._write()
        return rows.filter(pk=self._row_pk, cancel_requested_at__isnull=False).exists()

    def _lose(self) -> None:
        if not self.lost.is_set():
            log.error(
                "%s: lease of message %s ran out and another worker took it; this run stops "
                "at its next progress report",
                self.queue,
                self.message_id,
            )
            self.lost.set()

    def stop(self) -> None:
        """Stop beating and delete the state row (the delivery is done, or given back)."""
        if self._pacemaker is not None:
            self._pacemaker.detach(self.beat)
            self._pacemaker = None
        if self._own_pacemaker is not None:
            self._own_pacemaker.close()
            self._own_pacemaker = None
        if self._row_pk is None:
            return
        try:
            InProgress.objects.using(self.using).filter(pk=self._row_pk).delete()
        except Exception as error:  # noqa: BLE001 - a stale row is only shown, never acted on
            log.warning(
                "%s: could not clear the state of %s: %s", self.queue, self.message_id, error
            )
