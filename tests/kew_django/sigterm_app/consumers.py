"""Consumers for the SIGTERM tests, run by manage.py in a subprocess: a slow one, a long one."""

import os
import time
from pathlib import Path

from kew_django import Work, consumer

QUEUE = "test.sigterm"
LONG_QUEUE = "test.sigterm.long"


def mark(name: str) -> None:
    Path(os.environ["KEW_TEST_MARKS"], name).touch()


@consumer(QUEUE, idempotent=True)
def slow(data: dict) -> None:
    """Leave a mark, then take a while."""
    mark(f"{data['n']}.started")
    time.sleep(float(os.environ.get("KEW_TEST_HANDLER_SECONDS", "1")))


@consumer(LONG_QUEUE, idempotent=True, atomic=False)
def long(data: dict, work: Work) -> None:
    """Report progress every 0.1 s for KEW_TEST_LONG_SECONDS; mark each run, its end, a failure.

    The ``except Exception`` stands for a handler's own error handling: a
    shutdown must pass through it.
    """
    run = f"{data['n']}.attempt-{work.attempt}.pid-{os.getpid()}"
    mark(f"{run}.started")
    try:
        end = time.monotonic() + float(os.environ.get("KEW_TEST_LONG_SECONDS", "3"))
        while time.monotonic() < end:
            work.progress(None, None, "working")
            time.sleep(0.1)
    except Exception:
        mark(f"{run}.failed")
        raise
    with work.commit():
        mark(f"{run}.done")
