"""Send one message on queue ARGV[1] and die by SIGKILL after the commit, before its publish.

    python -m tests.kew_django.outbox.oncommit_child QUEUE

Its ``on_commit`` callback that kills the process is registered before the
send's own, so Django runs it first: the row is committed, the publisher
never gets it. Prints the row's id before the commit.
"""

import os
import signal
import sys

import django


def main() -> None:
    django.setup()
    from django.db import transaction

    from kew_django import Channel

    with transaction.atomic():
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        row = Channel(sys.argv[1]).send({"n": 1})
        print(row.pk, flush=True)
    sys.exit("still alive after the commit")


if __name__ == "__main__":
    main()
