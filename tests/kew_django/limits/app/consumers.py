"""Consumers with limits, for the limit tests' ``kew_consume`` processes.

Each handler appends ``start|end <n> <key> <pid> <time.time()>`` lines to
a file under ``KEW_TEST_MARKS`` (one per queue), so the test sees every
start and end across processes.
"""

import os
import time
from pathlib import Path

from kew_django import consumer
from kew_django.limits import Limit

CONCURRENCY, FAIR, RATE, KILL = "limits.concurrency", "limits.fair", "limits.rate", "limits.kill"
FREE, LIMITED, TWO = "limits.bench.free", "limits.bench.limited", "limits.bench.two"  # bench
WORK = 0.02  # seconds each concurrency and fairness handler takes


def mark(queue: str, what: str, data: dict) -> None:
    line = f"{what} {data['n']} {data.get('key', '-')} {os.getpid()} {time.time():.6f}\n"
    with Path(os.environ["KEW_TEST_MARKS"], queue).open("a") as marks:
        marks.write(line)


# atomic=False: outside a transaction, so that SQLite's one writer does not serialize them.
@consumer(CONCURRENCY, limit=2, retry=None, atomic=False)
def at_most_two(data: dict, work: object) -> None:
    """Record the start and the end of a short piece of work."""
    mark(CONCURRENCY, "start", data)
    time.sleep(WORK)
    mark(CONCURRENCY, "end", data)


@consumer(
    FAIR,
    limit=Limit(concurrency=2, per_key=1),
    key=lambda data: data["key"],
    retry=None,
    atomic=False,
)
def one_per_key(data: dict, work: object) -> None:
    """Record the start and the end of a short piece of work for the data's key."""
    mark(FAIR, "start", data)
    time.sleep(WORK)
    mark(FAIR, "end", data)


@consumer(RATE, limit=Limit(rate=20), retry=None)
def twenty_a_second(data: dict) -> None:
    """Record the start."""
    mark(RATE, "start", data)


@consumer(KILL, limit=1, retry=None, atomic=False)
def one_at_a_time(data: dict, work: object) -> None:
    """Record the start; a slow message takes long enough for the test to kill its worker."""
    path = Path(os.environ["KEW_TEST_MARKS"], KILL)
    again = path.exists() and f"start {data['n']} " in path.read_text()
    mark(KILL, "start", data)
    time.sleep(60 if data.get("slow") and not again else WORK)
    mark(KILL, "end", data)


# bench/limits.py: trivial handlers, without a limit, with one that never refuses
# (4 slots for 2 processes of 2 threads: the cost of the slot itself), and with 2.


@consumer(FREE, retry=None)
def free(data: dict) -> None:
    """Do nothing."""


@consumer(LIMITED, limit=4, retry=None)
def limited(data: dict) -> None:
    """Do nothing, holding a slot."""


@consumer(TWO, limit=2, retry=None)
def two(data: dict) -> None:
    """Do nothing, holding one of 2 slots."""
