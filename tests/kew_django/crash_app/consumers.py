"""A consumer that kills its own process on one message, for the crash-loop tests.

Run by ``manage.py kew_consume`` in a subprocess (``tests/kew_django/crash_settings.py``).
Every run of the handler and of ``on_exhausted`` appends a line to a file
under ``KEW_TEST_MARKS``, so the test counts effects across processes.
"""

import os
import signal
from pathlib import Path

from kew_django import consumer

QUEUE = "test.crashloop"


def mark(name: str, line: str) -> None:
    with Path(os.environ["KEW_TEST_MARKS"], name).open("a") as marks:
        marks.write(line + "\n")


def gave_up(data: dict, error: BaseException | None) -> None:
    """Record the outcome of a message Kew gave up on."""
    mark("exhausted", f"{data['n']} {type(error).__name__}")


@consumer(QUEUE, idempotent=True, retry="0.1s 0.1s", on_exhausted=gave_up)
def handle(data: dict) -> None:
    """Kill this process on the poison message (as an out-of-memory kill would); else mark."""
    if data.get("poison"):
        mark("started-poison", str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    mark("handled", str(data["n"]))
