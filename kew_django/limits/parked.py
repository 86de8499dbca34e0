"""Parked messages: those whose key (or limit) was full step aside and wait here.

A FIFO broker queue cannot skip a message; so a message that may not
start is written to ``ParkedMessage`` (one short transaction) and its
delivery acked after that commits. Every worker of the queue looks here
before it receives from the broker (``ParkingReceiver``): it takes the
oldest parked message of the key served longest ago among those whose
limits allow a start, its slot taken in the same transaction as the row
is claimed. So keys take turns (round-robin), whatever their backlogs.

A claimed row is leased as a delivery is (renewed by the heartbeat,
deleted by the ack); a worker that dies holding it leaves it to be
claimed again once the lease ends. A crash between the park's commit and
the broker ack delivers the message again; its id finds the parked row
(unique per queue and id) and it is acked without a second row.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.db.models.functions import Now

from kew.providers.base import Delivery, Provider, Receiver
from kew_django.limits import store
from kew_django.limits.declared import Limit
from kew_django.limits.store import Refused, Slot
from kew_django.models import LimitClock, LimitSetting, ParkedMessage

KEYS_PER_LOOK = 16  # keys tried per look: the bound on one look's transactions
SHORT_RECEIVE = 0.05  # seconds a broker receive waits while messages are parked


def park(delivery: Delivery, *, queue: str, limit: str, key: str, using: str) -> None:
    """Write ``delivery``'s message as parked, then ack the delivery (after the commit)."""
    try:
        with transaction.atomic(using=using):
            ParkedMessage.objects.using(using).create(
                queue=queue,
                limit=limit,
                key=key,
                payload=delivery.payload,
                message_id=delivery.message_id,
                properties=dict(delivery.properties),
                redelivered=delivery.redelivered,
            )
    except IntegrityError:
        pass  # parked before, its ack lost: that row stands for it
    delivery.ack()


class ParkedDelivery(Delivery):
    """A parked message, claimed with its slot; ``ack`` deletes the row."""

    def __init__(
        self,
        row: ParkedMessage,
        *,
        token: uuid.UUID,
        slot: uuid.UUID | None,
        lease: float,
        using: str,
    ):
        self.queue, self.payload = row.queue, bytes(row.payload)
        self.message_id, self.properties = row.message_id, dict(row.properties or {})
        self.redelivered = row.redelivered
        self.parked_at = row.parked_at
        self.lease, self.using, self._length = lease, using, timedelta(seconds=lease)
        self._pk, self._token, self.slot = row.pk, token, slot

    def _row(self) -> Any:
        return ParkedMessage.objects.using(self.using).filter(pk=self._pk, claim_token=self._token)

    def renew(self) -> bool:
        """Move the claim's end to ``lease`` from now (the database's clock)."""
        return bool(self._row().update(claimed_until=Now() + self._length))

    def ack(self) -> None:
        """Delete the parked row."""
        self._row().delete()


class Parking:
    """Take parked messages of one queue round-robin by key, each with its slot."""

    def __init__(self, limit: Limit, *, queue: str, holder: str, lease: float, using: str):
        self.limit, self.queue, self.holder = limit, queue, holder
        self.lease, self.using = lease, using
        self.name = limit.name or queue

    def rows(self) -> Any:
        """Return the queue's parked rows that nobody holds now."""
        free = Q(claimed_until__isnull=True) | Q(claimed_until__lte=Now())
        return ParkedMessage.objects.using(self.using).filter(free, queue=self.queue)

    def any(self) -> bool:
        """Return whether messages are parked (held or not)."""
        return ParkedMessage.objects.using(self.using).filter(queue=self.queue).exists()

    def turns(self) -> list[str]:
        """Return the keys with free parked messages that may start, served longest ago first.

        Keys at their limit are left out by one read, so a full limit costs
        no locked transaction.
        """
        limit = self.limit.over(vars(LimitSetting.objects.using(self.using).get(name=self.name)))
        held = store.live_slots(self.name, self.using).values_list("key").annotate(n=Count("id"))
        counts = dict(held.order_by())
        if limit.concurrency is not None and sum(counts.values()) >= limit.concurrency:
            return []
        keys = {
            key
            for key in self.rows().values_list("key", flat=True).distinct()
            if limit.per_key is None or counts.get(key, 0) < limit.per_key
        }
        clocks = LimitClock.objects.using(self.using).filter(limit=self.name)
        served = dict(
            clocks.filter(key__in=[store.clock_of(k) for k in keys]).values_list("key", "served_at")
        )
        return sorted(keys, key=lambda k: (served.get(store.clock_of(k), 0.0), k))[:KEYS_PER_LOOK]

    def take(self) -> ParkedDelivery | None:
        """Claim the next parked message whose limits allow a start; None if there is none."""
        for key in self.turns():
            taken = self._take(key)
            if isinstance(taken, ParkedDelivery):
                return taken
            if isinstance(taken, Refused) and not taken.reason.by_key:
                return None  # the whole limit is full: no key can start
        return None

    def _take(self, key: str) -> ParkedDelivery | Refused | None:
        token = uuid.uuid4()
        found: list[ParkedMessage] = []

        def claim() -> bool:
            row = self.rows().filter(key=key).order_by("id").first()
            if row is None:
                return False
            until = Now() + timedelta(seconds=self.lease)
            row.redelivered = row.redelivered or row.claimed_until is not None  # its taker died
            self.rows().filter(pk=row.pk).update(
                claim_token=token, claimed_until=until, redelivered=row.redelivered
            )
            store.served(self.name, key, self.using)
            found.append(row)
            return True

        decided = store.acquire(
            self.limit,
            key,
            holder=self.holder,
            lease=self.lease,
            using=self.using,
            claim=claim,
            glance=True,
        )
        if not isinstance(decided, Slot):
            return decided
        return ParkedDelivery(
            found[0], token=token, slot=decided.token, lease=self.lease, using=self.using
        )


class ParkingReceiver(Receiver):
    """Receive parked messages that may start first, then the broker's."""

    def __init__(self, inner: Receiver, parking: Parking):
        self.inner, self.parking, self.queue = inner, parking, inner.queue

    def receive(self, timeout: float | None = None) -> Delivery | None:
        """Return a parked message that may start, else wait for the broker's next delivery."""
        taken = self.parking.take()
        if taken is not None:
            return taken
        if self.parking.any():  # look at the parked ones again soon
            timeout = SHORT_RECEIVE if timeout is None else min(timeout, SHORT_RECEIVE)
        return self.inner.receive(timeout)

    def close(self) -> None:
        """Close the broker's receiver (a claimed parked message comes back after its lease)."""
        self.inner.close()


class ParkingProvider(Provider):
    """``inner``, whose receivers look at the parked messages first."""

    def __init__(self, inner: Provider, parking: Parking):
        self.inner, self.parking = inner, parking
        self.capabilities = inner.capabilities

    def producer(self) -> Any:
        """Return the inner provider's producer."""
        return self.inner.producer()

    def receiver(self, queue: str, *, prefetch: int = 1) -> Receiver:
        """Return a ``ParkingReceiver`` over the inner provider's receiver."""
        return ParkingReceiver(self.inner.receiver(queue, prefetch=prefetch), self.parking)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def waited_since(delivery: Delivery) -> float | None:
    """Return how long a parked message waited, in seconds (None for a broker's delivery)."""
    if not isinstance(delivery, ParkedDelivery):
        return None
    return max(0.0, time.time() - delivery.parked_at.timestamp())
