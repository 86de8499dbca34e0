"""One queue: each message adds one row to ``soak_effect``; poison ones fail for good.

A message marked ``fail_once`` answers RETRY the first time (recording that
in ``soak_failed``) and has its effect the second time. One marked ``kill``
SIGKILLs its consumer process every time (as an out-of-memory kill would),
until Kew gives it up. ``on_exhausted`` adds a row to ``soak_exhausted``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from django.db import connection

from kew_django import Channel, PermanentError, RepeatAction, consumer


@dataclass
class Item:
    n: int
    poison: bool = False
    fail_once: bool = False
    kill: bool = False


items = Channel("soak.items", payload=Item)


def gave_up(item: Item, error: BaseException | None) -> None:
    """Record the outcome of an item Kew gave up on (in the dead letter's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO soak_exhausted (n) VALUES (%s)", [item.n])


@consumer(items, retry="1s 1s 2s 5s", idempotent=True, prefetch=20, on_exhausted=gave_up)
def handle(item: Item) -> RepeatAction | None:
    if item.kill:
        os.kill(os.getpid(), signal.SIGKILL)
    if item.poison:
        raise PermanentError(f"item {item.n} is poison (soak)")
    with connection.cursor() as cursor:
        if item.fail_once:
            cursor.execute("SELECT 1 FROM soak_failed WHERE n = %s", [item.n])
            if cursor.fetchone() is None:
                cursor.execute("INSERT INTO soak_failed (n) VALUES (%s)", [item.n])
                return RepeatAction.RETRY
        cursor.execute("INSERT INTO soak_effect (n, at) VALUES (%s, CURRENT_TIMESTAMP)", [item.n])
    return None
