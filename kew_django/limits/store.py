"""The limits' tables, and the one place that takes, renews and gives back slots.

A start is decided in one short transaction with the limit's
``LimitSetting`` row locked (``SELECT ... FOR UPDATE`` on PostgreSQL; on
SQLite the whole database, by its IMMEDIATE transactions): count the
slots whose lease has not ended, check the rate clocks, then write the
new slot and move the clocks. Leases and rate clocks use the database's
clock, never a host's.

Rates are a generic cell rate algorithm: a clock's ``tat`` (theoretical
arrival time) moves by ``1/rate`` per start; a start is allowed once the
database's time is within ``TOLERANCE`` intervals of it. The tolerance
absorbs how late a waiting worker wakes (so the long-run rate is the
rate), and allows at most one start early, so never more than two
starts back to back: smooth, not bursty.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models.functions import Now

from kew_django.limits.declared import Limit
from kew_django.models import LimitClock, LimitSetting, LimitSlot

SWEEP_CHANCE = 0.01  # of a release clearing the ended slots (they are ignored until then)
TOLERANCE = 1.0  # of one interval (1/rate), see the module docstring
EPOCH = {
    "postgresql": "SELECT extract(epoch from clock_timestamp())::float8",
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
}


class Refusal(Enum):
    """Why a message cannot start now."""

    CONCURRENCY = "concurrency"  # the limit's slots are all held
    KEY = "key"  # its key's slots are all held
    RATE = "rate"  # the limit's rate clock is ahead
    KEY_RATE = "key_rate"  # its key's rate clock is ahead

    @property
    def by_key(self) -> bool:
        """Return whether only this message's key is full (others may start)."""
        return self in (Refusal.KEY, Refusal.KEY_RATE)


@dataclass(frozen=True)
class Refused:
    """A start refused, and how long until a rate clock allows one (0 for a slot)."""

    reason: Refusal
    wait: float = 0.0


@dataclass(frozen=True)
class Slot:
    """A start granted; ``token`` names its slot (None when only a rate was limited)."""

    token: uuid.UUID | None


@dataclass(frozen=True)
class Clocks:
    """The database's time and the rate clocks read at it (theoretical arrival times)."""

    now: float = 0.0
    tat: dict[str, float] = field(default_factory=dict)


class _Abandon(Exception):
    """Roll the start back: the caller's ``claim`` found nothing to start."""


def db_epoch(using: str) -> float:
    """Return the database's clock in seconds since the epoch (this host's elsewhere)."""
    connection = connections[using]
    sql = EPOCH.get(connection.vendor)
    if sql is None:
        return time.time()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return float(cursor.fetchone()[0])


def ensure(name: str, using: str) -> None:
    """Create the limit's row (the lock its starts take) if it is missing."""
    try:
        with transaction.atomic(using=using):
            LimitSetting.objects.using(using).get_or_create(name=name)
    except IntegrityError:  # another process created it meanwhile
        pass


def acquire(
    limit: Limit,
    key: str | None,
    *,
    holder: str,
    lease: float,
    using: str,
    claim: Callable[[], bool] | None = None,
    glance: bool = False,
) -> Slot | Refused | None:
    """Start one message of ``limit`` (and ``key``) if its limits allow; commits on its own.

    ``claim`` runs in the same transaction once the start is allowed; if it
    returns False nothing is written and None is returned. With ``glance``
    (a caller that was refused before) a full limit is answered by a read,
    without the lock: only a start waits for it.
    """
    name, key = limit.name or "", key or ""
    settings = LimitSetting.objects.using(using)
    if glance:
        refused, _ = _refusal(limit.over(vars(settings.get(name=name))), key, using)
        if refused is not None:
            return refused
    try:
        with transaction.atomic(using=using):
            unhurried(using)
            effective = limit.over(vars(settings.select_for_update().get(name=name)))
            refused, clocks = _refusal(effective, key, using)
            if refused is not None:
                return refused
            if claim is not None and not claim():
                raise _Abandon
            return _take(effective, key, clocks, holder, lease, using)
    except _Abandon:
        return None


def clock_of(key: str) -> str:
    """Return the ``LimitClock`` key of a message key ("" is the whole limit's clock)."""
    return f"={key}"


def live_slots(name: str, using: str) -> Any:
    """Return the slots of limit ``name`` whose lease has not ended."""
    return LimitSlot.objects.using(using).filter(limit=name, expires_at__gt=Now())


def _refusal(limit: Limit, key: str, using: str) -> tuple[Refused | None, Clocks]:
    """Return why ``limit`` refuses a start of ``key`` now (or None), and its rate clocks."""
    if limit.per_key is not None or limit.concurrency is not None:
        slots = live_slots(limit.name or "", using)
        if limit.per_key is not None and slots.filter(key=key).count() >= limit.per_key:
            return Refused(Refusal.KEY), Clocks()
        if limit.concurrency is not None and slots.count() >= limit.concurrency:
            return Refused(Refusal.CONCURRENCY), Clocks()
    if limit.rate is None and limit.key_rate is None:
        return None, Clocks()
    now = db_epoch(using)
    rows = LimitClock.objects.using(using).filter(
        limit=limit.name or "", key__in={clock_of(key), ""}
    )
    clocks = Clocks(now, dict(rows.values_list("key", "tat")))
    for clock_key, rate, reason in (
        (clock_of(key), limit.key_rate, Refusal.KEY_RATE),
        ("", limit.rate, Refusal.RATE),
    ):
        if rate is not None:
            early = clocks.tat.get(clock_key, 0.0) - TOLERANCE / rate - now
            if early > 0:
                return Refused(reason, early), clocks
    return None, clocks


def _tick(name: str, key: str, rate: float, clocks: Clocks, using: str) -> None:
    """Move the rate clock of ``name`` and ``key`` by one start (inside the lock)."""
    tat = max(clocks.tat.get(key, 0.0), clocks.now) + 1 / rate
    rows = LimitClock.objects.using(using)
    if not rows.filter(limit=name, key=key).update(tat=tat):
        rows.create(limit=name, key=key, tat=tat)


def _take(limit: Limit, key: str, clocks: Clocks, holder: str, lease: float, using: str) -> Slot:
    if limit.key_rate is not None:
        _tick(limit.name or "", clock_of(key), limit.key_rate, clocks, using)
    if limit.rate is not None:
        _tick(limit.name or "", "", limit.rate, clocks, using)
    if limit.per_key is None and limit.concurrency is None:
        return Slot(None)
    token = uuid.uuid4()
    LimitSlot.objects.using(using).create(
        limit=limit.name or "",
        key=key,
        token=token,
        holder=holder[:200],
        expires_at=Now() + timedelta(seconds=lease),
    )
    return Slot(token)


def served(name: str, key: str, using: str) -> None:
    """Note that ``key`` was served now: the round-robin of parked messages moves past it."""
    now = db_epoch(using)
    clocks = LimitClock.objects.using(using)
    if not clocks.filter(limit=name, key=clock_of(key)).update(served_at=now):
        clocks.get_or_create(limit=name, key=clock_of(key), defaults={"served_at": now})


def renew(token: uuid.UUID, lease: float, using: str) -> bool:
    """Move the slot's lease end to ``lease`` from now; False if it was lost (lease ran out)."""
    slots = LimitSlot.objects.using(using).filter(token=token)
    return bool(slots.update(expires_at=Now() + timedelta(seconds=lease)))


def release(token: uuid.UUID, using: str) -> None:
    """Give the slot back (and clear slots whose lease ended: their holders died)."""
    with transaction.atomic(using=using):
        unhurried(using)
        LimitSlot.objects.using(using).filter(token=token).delete()
    if random.random() < SWEEP_CHANCE:  # noqa: S311 - spreads the sweeps, no secret
        LimitSlot.objects.using(using).filter(expires_at__lte=Now()).delete()


def unhurried(using: str) -> None:
    """Let this transaction's commit return before PostgreSQL flushes it to disk.

    Slots are leases: a commit lost in a crash of the database server frees a
    slot early (or holds it until its lease ends), it loses no message; and
    the limit's lock is held until the commit returns, so waiting for the
    disk would make every start wait for the one before it.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
