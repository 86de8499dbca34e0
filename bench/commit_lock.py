"""Commits per second of a business transaction, with and without a Kew ``send()``.

Usage::

    .venv/bin/python bench/commit_lock.py [--threads 1 4 8 16] [--seconds 5] [--rounds 2]
        [--no-trigger]

It starts PostgreSQL with ``tests.harness`` at production durability
(``fsync``, ``full_page_writes`` and ``synchronous_commit`` on, checked and
printed, as ``bench/soak.py`` does), migrates a fresh database, and runs N
sender threads (each its own connection) for ``--seconds``. Each
transaction inserts one business row, and then:

- plain: nothing else;
- tworows: a second row of a message's size in a table without indexes or
  triggers (a control: what any second INSERT costs on this machine);
- outbox: ``Channel.send()`` to a broker-backed queue (an outbox row; the
  relay is woken after the commit);
- direct: ``Channel.send()`` to the database provider with ``direct`` on
  (the queue row itself; consumers are woken after the commit);
- trigger: the outbox send with the NOTIFY trigger of migration 0002 put
  back (what every send cost before 0008), unless ``--no-trigger``.

Each measurement also prints this process's CPU a commit (the senders and
Kew's notifier thread): the threads share one GIL, so a sender whose
Python work per commit grows is slowed by that, not only by the database.

Modes and thread counts are interleaved, ``--rounds`` times. It prints
each mode's best commits/s side by side and its ratio to plain: the
median over the rounds of the ratio within a round (plain and the mode ran
seconds apart, so a machine that slows down mid-run moves both). The
target with a send: 0.90 or more. A script, not a test: figures
are printed as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = ("plain", "tworows", "outbox", "direct", "trigger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-trigger", action="store_true")
    args = parser.parse_args()
    modes = [m for m in MODES if not (args.no_trigger and m == "trigger")]

    from bench.soak import use_postgres
    from tests.harness.postgres import PostgresServer

    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        use_postgres(postgres)  # production durability, checked and printed
        setup_django()
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for threads in args.threads:
                for mode in modes:
                    rate = measure(mode, threads, args.seconds)
                    rates.setdefault((mode, threads), []).append(rate)
        report(rates, args.threads, modes)
        from kew_django.db.wake import notifiers

        notifiers.close_all()


def setup_django() -> None:
    """Configure Django on DATABASE_URL, migrate, and make the business table."""
    os.environ["KEW_BROKER_URL"] = "memory://"  # the outbox's queues; nothing is relayed
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.KEW = {
        **settings.KEW,
        "PROVIDERS": {
            "default": {"URL": "memory://"},
            "direct": {"URL": "database://?direct=true"},
        },
    }
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_business (id bigserial PRIMARY KEY, n int, note text)")
        cursor.execute("CREATE TABLE bench_second (id bigserial PRIMARY KEY, payload bytea)")
    connection.close()


def measure(mode: str, threads: int, seconds: float) -> float:
    """Run ``threads`` senders in ``mode`` for ``seconds``; return commits per second."""
    from django.db import connections

    triggers = importlib.import_module("kew_django.migrations.0002_notify_triggers")
    if mode == "trigger":
        with connections["default"].cursor() as cursor:
            cursor.execute(triggers.CREATE)
    stop = threading.Event()
    counts = [0] * threads
    started = threading.Barrier(threads + 1)
    workers = [
        threading.Thread(target=sender, args=(mode, stop, counts, n, started))
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    started.wait()
    began, cpu = time.monotonic(), time.process_time()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed, cpu = time.monotonic() - began, time.process_time() - cpu
    if mode == "trigger":
        with connections["default"].cursor() as cursor:
            cursor.execute(triggers.DROP)
    connections["default"].close()
    rate = sum(counts) / elapsed
    per_commit = cpu / max(sum(counts), 1) * 1000
    print(
        f"  {mode:<8} {threads:>2} thread(s): {rate:8.0f} commits/s, "
        f"{per_commit:.2f} ms of this process's CPU a commit",
        flush=True,
    )
    return rate


def sender(mode: str, stop: threading.Event, counts: list[int], n: int, started) -> None:
    """Commit transactions of one business row (and a send) until ``stop``."""
    from django.db import connection, transaction

    from kew_django import Channel

    channel: Channel[dict] = Channel(
        "bench.commit_lock", provider="direct" if mode == "direct" else "default"
    )
    with connection.cursor() as cursor:  # connect before the clock starts
        cursor.execute("SELECT 1")
    started.wait()
    done = 0
    try:
        while not stop.is_set():
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO bench_business (n, note) VALUES (%s, %s)", [done, "order"]
                    )
                    if mode == "tworows":
                        cursor.execute(
                            "INSERT INTO bench_second (payload) VALUES (%s)",
                            [b'{"order": %d, "sender": %d}' % (done, n)],
                        )
                if mode not in ("plain", "tworows"):
                    channel.send({"order": done, "sender": n})
            done += 1
    finally:
        counts[n] = done
        connection.close()


def report(rates: dict[tuple[str, int], list[float]], threads: list[int], modes: list[str]) -> None:
    """Print each mode's best commits/s and its median ratio to plain within a round."""
    sends = [m for m in modes if m != "plain"]
    head = f"{'threads':>7} {'plain':>8}" + "".join(f" {m:>8} {'ratio':>6}" for m in sends)
    print("\ncommits/s (best round), one business row per transaction; ratio: median of rounds")
    print(head)
    for count in threads:
        plain = rates["plain", count]
        line = f"{count:>7} {max(plain):>8.0f}"
        for mode in sends:
            ratios = [r / p for r, p in zip(rates[mode, count], plain, strict=True)]
            line += f" {max(rates[mode, count]):>8.0f} {statistics.median(ratios):>6.2f}"
        print(line)
    print("target: outbox and direct at 0.90 or more of plain; tworows is the control")


if __name__ == "__main__":
    main()
