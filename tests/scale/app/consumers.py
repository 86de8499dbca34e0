"""Consumers of the scale-out tests, run by ``manage.py kew_consume`` in subprocesses.

Each records an :class:`Effect` in the handler's transaction, named after
the process (``KEW_SCALE_WORKER``). The queues are ``<prefix>.work``,
``<prefix>.plain`` and ``<prefix>.timed``, the prefix from
``KEW_SCALE_QUEUES`` (one per test, so that tests sharing a broker never
see each other's messages). ``work`` and ``timed`` are idempotent (Kew
records the message id in the same transaction); ``plain`` is not, so a
message handed to two consumers would leave two effects.
"""

import os
import time
from pathlib import Path

from kew_django import consumer

from .models import Effect

WORKER = os.environ.get("KEW_SCALE_WORKER", "worker")
PREFIX = os.environ.get("KEW_SCALE_QUEUES", "scale")


def record(queue: str, data: dict) -> None:
    """Take the payload's ``sleep`` seconds, spin its ``spin`` CPU seconds, write the effect."""
    if data.get("sleep"):
        time.sleep(data["sleep"])
    if data.get("spin"):  # CPU-bound work: this thread's CPU time, whatever the GIL allows
        until = time.thread_time() + data["spin"]
        while time.thread_time() < until:
            sum(i * i for i in range(200))
    Effect.objects.create(queue=queue, n=data["n"], worker=WORKER, handled_at=time.time())


@consumer(f"{PREFIX}.work", idempotent=True)
def work(data: dict) -> None:
    """Record the effect once per message id."""
    record(f"{PREFIX}.work", data)


@consumer(f"{PREFIX}.plain")
def plain(data: dict) -> None:
    """Record the effect on every delivery."""
    record(f"{PREFIX}.plain", data)


@consumer(f"{PREFIX}.timed", idempotent=True, retry="5s")
def timed(data: dict) -> None:
    """Fail the first time if asked (leaving a mark with the time), then record the effect."""
    mark = Path(os.environ["KEW_SCALE_MARKS"], f"{data['n']}.failed")
    if data.get("fail_first") and not mark.exists():
        mark.write_text(str(time.time()))
        raise RuntimeError("first attempt fails (test)")
    record(f"{PREFIX}.timed", data)
