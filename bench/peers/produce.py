"""Send COUNT messages with one system, one send (Kew: one transaction) each; print the times.

    python -m bench.peers.produce SYSTEM COUNT INTERVAL OUT

Writes OUT as JSON: when sending began, the epoch time at which each
message was handed off (Kew: its transaction's commit returned; dramatiq and
Celery: their send was called), indexed by message number, and the CPU seconds
the sending took.
"""

import json
import os
import sys
import time

PATH = "/data/lab-3/2026-11-28/plate-0042/well-B7/field-003.ome.tiff"


def main() -> None:
    system, count, interval, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peers.settings")
    sent: list[float] = []
    if system == "kew":
        import django

        django.setup()
        from django.db import transaction

        from bench.peers.app.consumers import Job, jobs

        def send(n: int) -> None:
            with transaction.atomic():
                jobs.send(Job(n, PATH))

    elif system == "dramatiq":
        from bench.peers.dramatiq_actors import handle

        def send(n: int) -> None:
            handle.send(n, PATH)

    else:
        from bench.peers.celery_app import handle as task

        def send(n: int) -> None:
            task.delay(n, PATH)

    send(-1)  # connect (and warm up) first; the bench counts only n >= 0
    began, cpu = time.time(), time.process_time()
    for n in range(count):
        if system == "kew":  # the message exists once the transaction has committed
            send(n)
            sent.append(time.time())
        else:  # the broker may hand it to a consumer before its confirm is back
            sent.append(time.time())
            send(n)
        if interval:
            time.sleep(interval)
    with open(out, "w") as file:
        json.dump({"began": began, "sent": sent, "cpu": time.process_time() - cpu}, file)


if __name__ == "__main__":
    main()
