"""Benchmark: Kew's task backend next to django-tasks-db, on the same PostgreSQL.

Starts PostgreSQL and Artemis with ``tests.harness`` (loopback), migrates a fresh
database, then measures in one run:

- the cost of one ``enqueue()`` inside ``transaction.atomic()`` (median of
  ``--enqueues``, interleaved, each its own transaction);
- tasks per second end to end: ``--count`` tasks enqueued in one transaction
  while a worker process is running, until every result is SUCCESSFUL. Kew runs
  ``manage.py kew_run bench`` (relay + worker, Artemis); django-tasks-db runs its
  own ``manage.py db_worker``.

django-tasks-db is installed for the bench only: ``pip install django-tasks-db``.
Run: ``.venv-py313/bin/python bench/tasks.py`` (or ``.venv``; Django 5.2 needs django-tasks).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENQUEUE_TARGET = 1.3
THROUGHPUT_TARGET = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enqueues", type=int, default=1000, help="enqueues per backend")
    parser.add_argument("--count", type=int, default=2000, help="tasks per throughput run")
    args = parser.parse_args()
    try:
        import django_tasks_db  # noqa: F401
    except ImportError:
        sys.exit("bench/tasks.py compares with django-tasks-db: pip install django-tasks-db")

    from tests.harness.artemis import ArtemisServer
    from tests.harness.postgres import PostgresServer

    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        artemis = stack.enter_context(ArtemisServer())
        dbname = f"kew_bench_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        os.environ["DATABASE_URL"] = postgres.url_for(dbname)
        os.environ["KEW_BROKER_URL"] = artemis.url
        os.environ["KEW_LOG_LEVEL"] = "WARNING"
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.tasks_app"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(
            f"Django {django.get_version()}, Python {sys.version.split()[0]}; PostgreSQL "
            f"({postgres.mode}) and Artemis {artemis.version} ({artemis.mode}) on loopback\n"
        )
        enqueue_cost(args.enqueues)
        throughput(args.count)


def enqueue_cost(n: int) -> None:
    from django.db import transaction

    from bench.tasks_functions import db_touch, kew_touch

    times: dict[str, list[float]] = {"kew": [], "db": []}
    for i in range(n):
        for name, task in (("kew", kew_touch), ("db", db_touch)):
            started = time.perf_counter()
            with transaction.atomic():
                task.enqueue(i)
            times[name].append(time.perf_counter() - started)
    kew, db = (statistics.median(times[k]) * 1e6 for k in ("kew", "db"))
    print(f"Cost of one enqueue() in a transaction (median of {n}, each its own transaction)")
    print(f"  Kew (result row + outbox row)              {kew:8.0f} us")
    print(f"  django-tasks-db (result row)               {db:8.0f} us")
    verdict = "meets" if kew / db <= ENQUEUE_TARGET else "misses"
    print(f"  Kew / django-tasks-db = {kew / db:.2f}x: {verdict} target <= {ENQUEUE_TARGET}x\n")
    clear()


def clear() -> None:
    from django_tasks_db.models import DBTaskResult

    from kew_django.models import OutboxMessage, TaskResultRecord

    DBTaskResult.objects.all().delete()
    TaskResultRecord.objects.all().delete()
    OutboxMessage.objects.all().delete()


def throughput(count: int) -> None:
    from django.db import transaction
    from django_tasks_db.models import DBTaskResult

    from bench.tasks_functions import db_touch, kew_touch
    from kew_django.models import TaskResultRecord

    runs = {
        "kew": (kew_touch, ["kew_run", "bench"], TaskResultRecord.objects, "SUCCESSFUL"),
        "db": (
            db_touch,
            [
                "db_worker",
                "--backend",
                "db",
                "--queue-name",
                "bench",
                "--interval",
                "0.1",
                "--no-startup-delay",
            ],
            DBTaskResult.objects,
            "SUCCESSFUL",
        ),
    }
    rates = {}
    for name, (task, command, results, done) in runs.items():
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *command],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(4)  # the worker is up and idle
            started = time.perf_counter()
            with transaction.atomic():
                for i in range(count):
                    task.enqueue(i)
            while results.filter(status=done).count() < count:
                assert worker.poll() is None, f"{command[0]} exited"
                time.sleep(0.05)
            rates[name] = count / (time.perf_counter() - started)
        finally:
            worker.terminate()
            worker.wait(30)
        clear()
    print(
        f"Tasks per second end to end ({count} tasks enqueued in one transaction -> all SUCCESSFUL)"
    )
    print(f"  Kew (kew_run: relay + 1 worker, Artemis)   {rates['kew']:8.0f} tasks/s")
    print(f"  django-tasks-db (db_worker)                {rates['db']:8.0f} tasks/s")
    ratio = rates["kew"] / rates["db"]
    verdict = "meets" if ratio >= THROUGHPUT_TARGET else "misses"
    print(f"  Kew / django-tasks-db = {ratio:.2f}x: {verdict} target >= {THROUGHPUT_TARGET}x")


if __name__ == "__main__":
    main()
