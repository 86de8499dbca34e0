"""Group commit in the worker, on and off, at production durability.

Usage::

    .venv/bin/python bench/group_commit.py [--count 3000] [--rounds 2] [--prefetch 100]

It starts PostgreSQL and Artemis with ``tests.harness`` (loopback), turns
PostgreSQL's ``fsync``, ``full_page_writes`` and ``synchronous_commit`` on
(as ``bench/soak.py`` does), runs Artemis with its journal synced, and
prints the consume rate of one worker thread (``prefetch`` 100; an
``idempotent=True`` consumer whose handler makes one ORM insert) with group
commit off (``BATCH_SIZE`` 1: a transaction per delivery) and on (the
defaults), over Artemis and over the database provider on the same
PostgreSQL, in interleaved rounds. The messages are queued before each
run, so it measures the consumer alone. It is a script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--prefetch", type=int, default=100)
    args = parser.parse_args()

    from bench.durability import durable
    from tests.harness.artemis import ArtemisServer
    from tests.harness.postgres import PostgresServer

    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        artemis = stack.enter_context(ArtemisServer(fsync=True))
        dbname = f"kew_group_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        durable(postgres.url_for(dbname), dbname)
        os.environ["DATABASE_URL"] = postgres.url_for(dbname)
        os.environ["KEW_BROKER_URL"] = artemis.url
        os.environ["KEW_LOG_LEVEL"] = "WARNING"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(f"Artemis {artemis.version} ({artemis.mode}, journal synced), loopback")
        run(args)


def run(args: argparse.Namespace) -> None:
    from kew_django.providers import build_provider, get_provider
    from kew_django.workers.batch import BatchLimits

    providers = {
        "Artemis": get_provider(),
        "database provider (PostgreSQL)": build_provider("bench-db", {"URL": "database://"}),
    }
    modes = {"off (a transaction each)": BatchLimits(size=1), "on (defaults)": BatchLimits()}
    try:
        for provider in providers.values():  # warm-up: connections, journal files, caches
            consume_rate(provider, min(args.count, 500), args.prefetch, BatchLimits())
        rates = {(p, m): [] for p in providers for m in modes}
        for _ in range(args.rounds):
            for (name, mode), runs in rates.items():
                runs.append(consume_rate(providers[name], args.count, args.prefetch, modes[mode]))
    finally:
        providers["database provider (PostgreSQL)"].close()  # its LISTEN thread first
    defaults = BatchLimits()
    print(
        f"\nConsume rate, 1 worker thread, prefetch {args.prefetch}, one-insert idempotent "
        f"handler ({args.count} messages, median of {args.rounds} interleaved rounds; "
        f"group commit on: BATCH_SIZE {defaults.size}, BATCH_TIME {defaults.seconds}s)"
    )
    for name in providers:
        off, on = (statistics.median(rates[name, mode]) for mode in modes)
        print(f"  {name}")
        for mode in modes:
            runs = rates[name, mode]
            print(f"    group commit {mode:<26} {statistics.median(runs):>8,.0f} msg/s  {runs}")
        print(f"    on / off = {on / off:.2f}x")


def consume_rate(provider, count: int, prefetch: int, limits) -> float:
    """Queue ``count`` messages, then return how many one worker thread handles per second."""
    from kew.providers.base import DeliveryOptions, Outgoing
    from kew_django.workers.registry import ConsumerSpec
    from kew_django.workers.worker import Worker, WorkerStats

    queue = f"bench.group.{uuid.uuid4().hex[:10]}"
    with provider.producer() as producer:
        for start in range(0, count, 500):
            producer.send_many(
                [
                    Outgoing(queue, b'{"n": %d}' % n, DeliveryOptions(message_id=f"{queue}-{n}"))
                    for n in range(start, min(start + 500, count))
                ]
            )
    stats = WorkerStats()
    spec = ConsumerSpec(queue, insert_one, idempotent=True, prefetch=prefetch)
    worker = Worker(spec, provider, stats=stats)
    worker.batch_limits = limits
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    began = time.perf_counter()
    thread.start()
    while sum(stats.counts.values()) < count and time.perf_counter() - began < 600:
        time.sleep(0.005)
    elapsed = time.perf_counter() - began
    stop.set()
    thread.join(30)
    return round(sum(stats.counts.values()) / elapsed)


def insert_one(data: dict) -> None:
    """The handler: one small row (as in bench/relay.py and the peer benchmark)."""
    from kew_django.models import ProcessedMessage

    ProcessedMessage.objects.create(consumer="bench", message_id=uuid.uuid4().hex)


if __name__ == "__main__":
    main()
