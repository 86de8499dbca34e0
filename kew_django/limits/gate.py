"""The gate before a handler: take a slot of the consumer's limit, wait for one, or park.

``Gate.admit`` runs on the worker's thread after the delivery's heartbeat
started (it renews the delivery while the message waits) and before the
engine decodes and runs it. A message that cannot start spends no
attempt and uses no retry:

- without a key, it waits on the worker's thread, the delivery in hand,
  until a slot is free or the rate clock allows it (a slot given back in
  this process wakes the waiters at once; others look again every
  ``POLL`` seconds);
- with a key, it steps aside: it is parked (``parked``) and its delivery
  acked, so the messages behind it on the broker's FIFO queue go on; the
  parked messages start round-robin by key as slots free.

The slot is leased (``KEW["CONSUMERS"]["LIMIT_LEASE"]``) and renewed by
the delivery's heartbeat through ``GatedDelivery.renew``; the worker
gives it back after the ack. A worker that dies holding one loses it when
its lease ends.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from kew.codecs import Codec
from kew.errors import DecodeError
from kew.providers.base import Delivery, Provider
from kew_django.conf import section
from kew_django.identity import worker_id
from kew_django.limits import parked, store
from kew_django.limits.declared import KeyFunction, Limit, declared_limit, key_function
from kew_django.limits.store import Refusal, Refused, Slot
from kew_django.observability.observer import Observer
from kew_django.workers.progress import Interrupted

log = logging.getLogger(__name__)
POLL = 0.1  # seconds between two looks at a full limit by a waiting worker


class Waiters:
    """Conditions by limit name: a slot given back in this process wakes its waiters at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conditions: dict[str, threading.Condition] = {}

    def condition(self, name: str) -> threading.Condition:
        """Return the condition of limit ``name``."""
        with self._lock:
            return self._conditions.setdefault(name, threading.Condition())

    def wake(self, name: str) -> None:
        """Wake the waiters of limit ``name``."""
        condition = self.condition(name)
        with condition:
            condition.notify_all()


waiters = Waiters()


class GatedDelivery(Delivery):
    """A delivery and the slot its message holds: ``renew`` renews both (the heartbeat's call)."""

    def __init__(self, inner: Delivery, *, lease: float, using: str):
        self.inner = inner
        self.queue, self.payload = inner.queue, inner.payload
        self.message_id, self.properties = inner.message_id, inner.properties
        self.redelivered = inner.redelivered
        self.lease = min(inner.lease, lease) if inner.lease else lease
        self.slot_lease, self.using = lease, using
        self.token: uuid.UUID | None = None  # the slot, once taken

    def renew(self) -> bool:
        """Renew the delivery, then the slot (a lost slot is logged: the limit may be passed)."""
        held = self.inner.renew()
        token = self.token
        if token is not None and not store.renew(token, self.slot_lease, self.using):
            log.warning("%s: the slot of message %s ran out", self.queue, self.message_id)
        return held

    def ack(self) -> None:
        """Acknowledge the delivery."""
        self.inner.ack()


class Gate:
    """Admit the deliveries of one consumer past its limit; one per worker thread."""

    def __init__(
        self,
        limit: Limit,
        *,
        queue: str,
        key: KeyFunction | None,
        codec: Codec[Any],
        using: str,
        lease: float,
        observer: object,
    ):
        self.limit, self.queue, self.key, self.codec = limit, queue, key, codec
        self.using, self.lease = using, lease
        self.name = limit.name or queue
        self.holder = worker_id()
        self.observer = observer if isinstance(observer, Observer) else None
        self.parking = (
            parked.Parking(limit, queue=queue, holder=self.holder, lease=lease, using=using)
            if limit.keyed and key is not None
            else None
        )
        store.ensure(self.name, using)

    def provider(self, provider: Provider) -> Provider:
        """Return ``provider``, or one whose receivers take startable parked messages first."""
        return provider if self.parking is None else parked.ParkingProvider(provider, self.parking)

    def wrap(self, delivery: Delivery) -> GatedDelivery:
        """Return ``delivery`` with the slot lease its heartbeat renews."""
        return GatedDelivery(delivery, lease=self.lease, using=self.using)

    def admit(self, delivery: GatedDelivery, stop: threading.Event) -> bool:
        """Take a slot for ``delivery``; False: parked and acked (do not handle it).

        Waits while the limit is full (see the module docstring); raises
        ``Interrupted`` if ``stop`` is set meanwhile.
        """
        if isinstance(delivery.inner, parked.ParkedDelivery):  # its slot came with it
            delivery.token = delivery.inner.slot
            self.note_wait(parked.waited_since(delivery.inner) or 0.0)
            return True
        key = self.key_of(delivery)
        started = time.monotonic()
        waited = False
        while True:
            decided = store.acquire(
                self.limit,
                key,
                holder=self.holder,
                lease=self.lease,
                using=self.using,
                glance=waited,
            )
            if isinstance(decided, Slot):
                delivery.token = decided.token
                if waited:
                    self.note_wait(time.monotonic() - started)
                return True
            assert isinstance(decided, Refused)
            if not waited:  # counted once per message, by the reason it first met
                self.note_refusal(decided.reason)
            if key is not None and self.parking is not None:
                parked.park(
                    delivery.inner, queue=self.queue, limit=self.name, key=key, using=self.using
                )
                return False
            waited = True
            self.sleep(decided.wait if decided.wait > 0 else POLL, stop)

    def key_of(self, delivery: Delivery) -> str | None:
        """Return the message's key (None without a key function or an undecodable payload)."""
        if self.key is None:
            return None
        try:
            data = self.codec.decode(delivery.payload)
        except DecodeError:
            return None  # the engine gives it up as undecodable
        return str(self.key(data))[:200]

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` at most, or until a slot is given back here; raise if stopping."""
        if stop.is_set():
            raise Interrupted("the worker is stopping")
        condition = waiters.condition(self.name)
        with condition:
            condition.wait(min(seconds, POLL))

    def release(self, delivery: GatedDelivery) -> None:
        """Give the message's slot back (after its ack) and wake this process's waiters."""
        token, delivery.token = delivery.token, None
        if token is None:
            return
        try:
            store.release(token, self.using)
        except Exception as error:  # noqa: BLE001 - the lease frees it in the end
            log.warning("%s: could not give a slot back: %s", self.queue, error)
        waiters.wake(self.name)

    def note_refusal(self, reason: Refusal) -> None:
        if self.observer is not None:
            self.observer.limit_refused(self.name, reason.value)

    def note_wait(self, seconds: float) -> None:
        if self.observer is not None:
            self.observer.limit_waited(self.name, seconds)


def gate_for(
    queue: str,
    limit: int | str | Limit | None,
    key: KeyFunction | str | None,
    *,
    codec: Codec[Any],
    using: str,
    observer: object,
) -> Gate | None:
    """Return the gate of ``queue``'s consumer, or None if it has no limit."""
    declared = declared_limit(queue, limit)
    if declared is None:
        return None
    lease = float(section("CONSUMERS").get("LIMIT_LEASE", 30.0))
    return Gate(
        declared,
        queue=queue,
        key=key_function(key, declared.name or queue),
        codec=codec,
        using=using,
        lease=lease,
        observer=observer,
    )
