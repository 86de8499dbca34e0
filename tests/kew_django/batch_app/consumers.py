"""A consumer that crashes its own process at one point of a batch, for the group-commit tests.

Run by ``manage.py kew_consume`` in a subprocess (``tests/kew_django/batch_settings.py``).
Each handler run writes a business row (``effects``) and a mark line
(``ran``: message and pid) under ``KEW_TEST_MARKS``, then sleeps for the
``pause`` its message's data names, if any. A message whose data
names a ``kill`` kills the process once (a file marks that it did):
``"now"`` inside its handler, before the batch commits; ``"after-commit"``
from ``transaction.on_commit``, between the batch's commit and its acks.
"""

import os
import signal
import time
from pathlib import Path

from django.db import transaction

from kew_django import consumer
from tests.kew_django.batch_app import effects

QUEUE = "test.groupcommit"
PLAIN = "test.groupcommit.plain"  # the same handler without idempotency records


def mark(name: str, line: str) -> None:
    with Path(os.environ["KEW_TEST_MARKS"], name).open("a") as marks:
        marks.write(line + "\n")


def first_time(name: str) -> bool:
    try:
        os.close(os.open(Path(os.environ["KEW_TEST_MARKS"], name), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def write_and_maybe_die(data: dict) -> None:
    """Write the message's business row; kill the process where the message says, once."""
    effects.write(data["n"])
    mark("ran", f"{data['n']} {os.getpid()}")
    time.sleep(data.get("pause", 0))
    kill = data.get("kill")
    if kill and first_time("killed"):
        if kill == "now":
            die()
        transaction.on_commit(die)


@consumer(QUEUE, idempotent=True, retry="0.1s 0.1s", prefetch=20)
def handle(data: dict) -> None:
    """The business row, with the message's idempotency record in the same transaction."""
    write_and_maybe_die(data)


@consumer(PLAIN, retry="0.1s 0.1s", prefetch=20)
def handle_plain(data: dict) -> None:
    """The business row alone: on the database provider the ack commits with it."""
    write_and_maybe_die(data)
