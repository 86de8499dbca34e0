"""Send COUNT messages with one system from SENDERS threads; write when each was committed.

    python -m bench.peers.produce SYSTEM WORKLOAD COUNT SENDERS INTERVAL OUT

SYSTEM is ``kew`` (whatever KEW_BROKER_URL names), ``dramatiq`` or
``celery``. WORKLOAD ``web``: each transaction inserts a business row (an
``Order``) and sends its message (Kew: ``Channel.send`` inside the
transaction; dramatiq and Celery: ``transaction.on_commit(send)``, as Django
teams use them). ``plain``: one message per transaction, nothing else.

The hand-off time of a message is stamped by an ``on_commit`` callback
registered before the send's, so it is the commit's return for every
system (a peer's handler may start before its publisher confirm is back).
OUT gets JSON: when sending began, the hand-off epoch time per message
number, and the CPU seconds the sending took. The process may be SIGKILLed
midway (the sender-kill run): what it committed is in the database.
"""

import json
import os
import sys
import threading
import time

PATH = "/data/lab-3/2026-11-28/plate-0042/well-B7/field-003.ome.tiff"


def sender(system: str):
    """Return send(n): one message for ``system``, inside the caller's transaction."""
    if system == "kew":
        from bench.peers.app.consumers import Job, jobs

        return lambda n: jobs.send(Job(n, PATH))
    from django.db import transaction

    if system == "dramatiq":
        from bench.peers.dramatiq_actors import handle as actor

        return lambda n: transaction.on_commit(lambda: actor.send(n, PATH))
    from bench.peers.celery_app import handle as task

    return lambda n: transaction.on_commit(lambda: task.delay(n, PATH))


def main() -> None:
    system, workload = sys.argv[1], sys.argv[2]
    count, senders, interval, out = (
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
        sys.argv[6],
    )
    label = os.environ.get("PEERS_SYSTEM", system)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from bench.peers.app.models import Order

    send = sender(system)
    sent: list[float] = [0.0] * count

    def one(n: int) -> None:
        with transaction.atomic():
            if n >= 0:
                transaction.on_commit(lambda: sent.__setitem__(n, time.time()))
            if workload == "web":
                Order.objects.create(system=label, n=n)
            send(n)

    def loop(first: int) -> None:
        try:
            for n in range(first, count, senders):
                one(n)
                if interval:
                    time.sleep(interval)
        finally:
            connection.close()

    one(-1)  # connect (and warm up) first; the bench counts only n >= 0
    began, cpu = time.time(), time.process_time()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(out, "w") as file:
        json.dump({"began": began, "sent": sent, "cpu": time.process_time() - cpu}, file)


if __name__ == "__main__":
    main()
