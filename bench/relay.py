"""Figures for kew_django on PostgreSQL and Artemis, measured in one run.

Usage::

    .venv/bin/python bench/relay.py [--count 10000] [--latency 500] [--rounds 3]

It starts PostgreSQL and Artemis with ``tests.harness`` (loopback), migrates a
fresh database and prints:

- relay throughput: committed outbox rows -> broker-confirmed messages per
  second, next to raw stomp.py pipelining the same payloads (one receipt on
  the last frame), measured in the same run;
- end-to-end latency, commit -> handler start, with LISTEN/NOTIFY waking the
  relay (p50, p99), messages sent one per transaction;
- consumer throughput: deliveries handled (each in its own transaction) and
  acked per second; and, with a one-insert handler, the Django worker next
  to the provider's raw consume + decode + the same insert + ack loop, with
  the insert in autocommit and in a transaction (what the worker's own code
  costs, apart from the transaction);
- the database provider's consumer throughput (the embedded default), on
  the same PostgreSQL and on an SQLite file (in a child process, which
  migrates a fresh file with the embedded default's settings);
- the cost of ``Channel.send()`` in a transaction against a plain ORM insert
  of the same row, and of a small three-column row.

Figures are printed as measured, target met or not. It is a script, not a test.
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass
class Job:
    n: int
    path: str = "/data/lab-3/2026-11-28/plate-0042/well-B7/field-003.ome.tiff"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages per throughput run")
    parser.add_argument("--latency", type=int, default=500, help="messages for the latency run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--sqlite-consumer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sqlite_consumer:
        sqlite_consumer(args.count)
        return

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
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(
            f"PostgreSQL ({postgres.mode}) and Artemis {artemis.version} ({artemis.mode}) "
            "on loopback"
        )
        Bench(artemis, args).run()


class Bench:
    def __init__(self, artemis, args):
        from kew_django import Channel
        from kew_django.providers import get_provider

        self.artemis = artemis
        self.args = args
        self.provider = get_provider()
        self.tag = uuid.uuid4().hex[:8]
        self.channel = Channel(self.queue("warmup"), payload=Job)
        self.payload = self.channel.codec.encode(Job(0))

    def queue(self, name: str) -> str:
        return f"bench.{self.tag}.{name}.{uuid.uuid4().hex[:6]}"

    def run(self) -> None:
        from kew_django.conf import DEFAULTS

        default_batch = DEFAULTS["RELAY"]["BATCH_SIZE"]
        count = self.args.count
        self.relay_rate(min(count, 2000), 100)  # warm-up: JIT, journal files, caches
        self.raw_pipelined(min(count, 2000))
        raw, relays = [], {size: [] for size in (100, default_batch, 2000)}
        for _ in range(self.args.rounds):
            raw.append(self.raw_pipelined(count))
            for size, runs in relays.items():
                runs.append(self.relay_rate(count, size))
        print(
            f"\nRelay throughput ({count} messages of {len(self.payload)} bytes, persistent; "
            f"median of {self.args.rounds} interleaved rounds)"
        )
        line("raw stomp.py, pipelined, 1 receipt", raw, "msg/s")
        for size, runs in relays.items():
            line(f"relay, batch {size} (rows -> confirmed)", runs, "msg/s")
        size = default_batch  # the verdict is the default batch's, not the best one's
        ratios = sorted(r / w for r, w in zip(relays[size], raw, strict=True))  # same round
        ratio = statistics.median(ratios)
        verdict(
            f"relay (batch {size}) / raw pipelined, median of per-round ratios = {ratio:.0%} "
            f"({ratios[0]:.0%}-{ratios[-1]:.0%})",
            ratio >= 0.8,
            f"target >= 80% at the default batch ({size})",
        )

        p50, p99, worst = self.latency(self.args.latency)
        print(
            f"\nEnd-to-end latency, commit -> handler start ({self.args.latency} messages, "
            "one per transaction, LISTEN/NOTIFY)"
        )
        print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {worst:.1f} ms")
        verdict("latency", p50 < 1.5 and p99 < 5, "target p50 < 1.5 ms, p99 < 5 ms")

        print(f"\nConsumer throughput ({count} messages; each handled in a transaction, acked)")
        for prefetch, threads in ((1, 1), (100, 1), (100, 4)):
            rate = self.consume_rate(count, prefetch, threads)
            print(f"  prefetch {prefetch:>3}, {threads} thread(s) {rate:>26,.0f} msg/s")
        workers, raws, transacted = [], [], []
        for _ in range(self.args.rounds):
            workers.append(self.consume_rate(count, 100, 1, handler=insert_one))
            raws.append(self.raw_consume_rate(count, 100))
            transacted.append(self.raw_consume_rate(count, 100, in_transaction=True))
        print(
            f"\nOne-insert handler ({count} messages, prefetch 100, median of "
            f"{self.args.rounds} interleaved rounds)"
        )
        line("raw: receive, decode, insert, ack", raws, "msg/s")
        line("raw, the insert in a transaction", transacted, "msg/s")
        line("Django worker (transaction, then ack)", workers, "msg/s")
        ratios = sorted(w / r for w, r in zip(workers, raws, strict=True))
        verdict(
            f"worker / raw = {statistics.median(ratios):.0%} ({ratios[0]:.0%}-{ratios[-1]:.0%})",
            statistics.median(ratios) >= 0.7,
            "target >= 70%",
        )
        print(
            "  raw in a transaction / raw = "
            f"{statistics.median(t / r for t, r in zip(transacted, raws, strict=True)):.0%}; "
            "worker / raw in a transaction = "
            f"{statistics.median(w / t for w, t in zip(workers, transacted, strict=True)):.0%} "
            "(the transaction's share of the gap, and the worker's own)"
        )

        from kew_django.providers import build_provider

        database = build_provider("bench-database", {"URL": "database://"})
        try:
            on_postgres = self.consume_rate(count, 100, 1, provider=database)
        finally:
            database.close()  # its LISTEN thread, before PostgreSQL stops
        on_sqlite = sqlite_consume_rate(count)
        print(f"\nDatabase provider, the embedded default ({count} messages, prefetch 100)")
        print(f"  PostgreSQL, 1 thread {on_postgres:>34,.0f} msg/s")
        print(f"  SQLite file (WAL), 1 thread {on_sqlite:>27,.0f} msg/s")

        send, outbox, plain = self.send_cost(2000)
        print("\nCost of one send() in a transaction (median of 2000, each its own transaction)")
        print(f"  Channel.send()                                         {send * 1e6:>6.0f} us")
        print(f"  ORM insert of the same row (OutboxMessage.create)      {outbox * 1e6:>6.0f} us")
        print(f"  ORM insert of a small row (ProcessedMessage.create)    {plain * 1e6:>6.0f} us")
        verdict(
            f"send() / ORM insert of the same row = {send / outbox:.2f}x",
            send <= 1.3 * outbox,
            "target <= 1.3x",
        )
        print(
            f"  send() / ORM insert of a small row = {send / plain:.2f}x (the outbox row is "
            "wider: payload, headers, 4 indexes)"
        )

    def raw_pipelined(self, count: int) -> float:
        """Send ``count`` persistent frames with stomp.py, one receipt on the last; msg/s."""
        import stomp

        done = threading.Event()

        class Receipt(stomp.ConnectionListener):
            def on_receipt(self, frame):
                done.set()

        conn = stomp.Connection12(
            [(self_host(self.artemis), self.artemis.stomp_port)],
            auto_decode=False,
            heartbeats=(10_000, 10_000),
        )
        conn.set_listener("receipt", Receipt())
        conn.connect(self.artemis.user, self.artemis.password, wait=True)
        queue = self.queue("raw")
        headers = {"persistent": "true", "destination-type": "ANYCAST"}
        began = time.perf_counter()
        for i in range(count):
            extra = {"receipt": "last"} if i == count - 1 else {}
            conn.send(
                queue, self.payload, headers={**headers, "_AMQ_DUPL_ID": str(uuid.uuid4()), **extra}
            )
        if not done.wait(120):
            raise TimeoutError("no receipt from the broker")
        elapsed = time.perf_counter() - began
        conn.disconnect()
        self.drain(queue, count)
        return count / elapsed

    def relay_rate(self, count: int, batch: int) -> float:
        """Commit ``count`` outbox rows, then time the relay publishing them; msg/s."""
        from django.db import transaction

        from kew_django import Channel
        from kew_django.relay.publisher import Relay

        channel = Channel(self.queue("relay"), payload=Job)
        for start in range(0, count, 1000):
            with transaction.atomic():
                channel.send_many([Job(i) for i in range(start, min(start + 1000, count))])
        relay = Relay(self.provider, batch_size=batch, queues=[channel.queue])
        began = time.perf_counter()
        relayed = relay.relay_all()
        elapsed = time.perf_counter() - began
        assert relayed == count, (relayed, count)
        relay.close()
        self.drain(channel.queue, count)
        return count / elapsed

    def latency(self, count: int) -> tuple[float, float, float]:
        from django.db import transaction

        from kew_django import Channel
        from kew_django.relay.publisher import Relay
        from kew_django.workers.registry import ConsumerSpec
        from kew_django.workers.worker import Worker

        channel = Channel(self.queue("latency"), payload=Job)
        committed: dict[int, float] = {}
        started: dict[int, float] = {}
        everything = threading.Event()

        def handler(job: Job) -> None:
            started[job.n] = time.perf_counter()
            if len(started) == count:
                everything.set()

        stop = threading.Event()
        relay = Relay(self.provider, queues=[channel.queue], poll_interval=5.0)
        worker = Worker(ConsumerSpec(channel.queue, handler, payload=Job), self.provider)
        threads = [
            threading.Thread(target=relay.run, args=(stop,)),
            threading.Thread(target=worker.run, args=(stop,)),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # LISTEN and SUBSCRIBE in place
        for n in range(count):
            with transaction.atomic():
                channel.send(Job(n))
            committed[n] = time.perf_counter()
            time.sleep(0.005)
        everything.wait(60)
        stop.set()
        for thread in threads:
            thread.join(30)
        delays = sorted((started[n] - committed[n]) * 1000 for n in started)
        assert len(delays) == count, f"only {len(delays)} of {count} handled"
        return percentile(delays, 50), percentile(delays, 99), delays[-1]

    def queued(self, count: int, provider=None):
        """Return a channel whose queue holds ``count`` messages relayed to ``provider``."""
        from django.db import transaction

        from kew_django import Channel
        from kew_django.relay.publisher import Relay

        channel = Channel(self.queue("consume"), payload=Job)
        for start in range(0, count, 1000):
            with transaction.atomic():
                channel.send_many([Job(i) for i in range(start, min(start + 1000, count))])
        Relay(provider or self.provider, batch_size=500, queues=[channel.queue]).relay_all()
        return channel

    def raw_consume_rate(self, count: int, prefetch: int, in_transaction: bool = False) -> float:
        """The provider's own loop, no worker: receive, decode, one insert, ack.

        The insert runs in autocommit, or with ``in_transaction`` in
        ``transaction.atomic()`` as the worker runs it (BEGIN and COMMIT).
        """
        from django.db import transaction

        channel = self.queued(count)
        began = time.perf_counter()
        with self.provider.receiver(channel.queue, prefetch=prefetch) as consumer:
            for _ in range(count):
                delivery = consumer.receive(30)
                if delivery is None:
                    raise RuntimeError(f"queue {channel.queue} came up short")
                job = channel.codec.decode(delivery.payload)
                if in_transaction:
                    with transaction.atomic():
                        insert_one(job)
                else:
                    insert_one(job)
                delivery.ack()
        return count / (time.perf_counter() - began)

    def consume_rate(
        self, count: int, prefetch: int, threads: int, handler=None, provider=None
    ) -> float:
        from kew_django.workers.registry import ConsumerSpec
        from kew_django.workers.worker import Worker, WorkerStats

        provider = provider or self.provider
        channel = self.queued(count, provider)
        stats = WorkerStats()
        spec = ConsumerSpec(
            channel.queue, handler or (lambda job: None), payload=Job, prefetch=prefetch
        )
        stop = threading.Event()
        workers = [
            threading.Thread(target=Worker(spec, provider, stats=stats).run, args=(stop,))
            for _ in range(threads)
        ]
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        while sum(stats.counts.values()) < count and time.perf_counter() - began < 300:
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
        stop.set()
        for worker in workers:
            worker.join(30)
        return sum(stats.counts.values()) / elapsed

    def send_cost(self, count: int) -> tuple[float, float, float]:
        from django.db import transaction

        from kew_django.models import OutboxMessage, ProcessedMessage

        channel = self.channel
        timings: dict[str, list[float]] = {"send": [], "outbox": [], "plain": []}

        def timed(name, action):
            began = time.perf_counter()
            with transaction.atomic():
                action()
            timings[name].append(time.perf_counter() - began)

        for i in range(count):  # interleaved, so the three see the same machine
            timed("send", lambda i=i: channel.send(Job(i)))
            timed(
                "outbox",
                lambda: OutboxMessage.objects.create(queue=channel.queue, payload=self.payload),
            )
            timed(
                "plain",
                lambda i=i: ProcessedMessage.objects.create(
                    consumer="bench", message_id=f"{self.tag}-{i}"
                ),
            )
        OutboxMessage.objects.filter(queue=channel.queue).delete()
        return tuple(statistics.median(timings[k]) for k in ("send", "outbox", "plain"))

    def drain(self, queue: str, count: int) -> None:
        with self.provider.receiver(queue, prefetch=500) as consumer:
            for _ in range(count):
                delivery = consumer.receive(30)
                if delivery is None:
                    raise RuntimeError(f"queue {queue} came up short")
                delivery.ack()


def insert_one(job: Job) -> None:
    """The one-insert handler: a small row, as in the peer benchmark."""
    from kew_django.models import ProcessedMessage

    ProcessedMessage.objects.create(consumer="bench", message_id=uuid.uuid4().hex)


def sqlite_consumer(count: int) -> None:
    """Print the database provider's consume rate on a fresh SQLite file (child process)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        os.environ.pop("KEW_BROKER_URL", None)  # the embedded default: database://
        os.environ["KEW_LOG_LEVEL"] = "WARNING"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(Bench(None, argparse.Namespace()).consume_rate(count, 100, 1))


def sqlite_consume_rate(count: int) -> float:
    """Run :func:`sqlite_consumer` in a child process and return its rate."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, __file__, "--sqlite-consumer", "--count", str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.split()[-1])


def self_host(artemis) -> str:
    return artemis.stomp_host


def percentile(ordered: list[float], p: float) -> float:
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def line(name: str, rates: list[float], unit: str) -> None:
    rates = sorted(rates)
    spread = f"({rates[0]:,.0f}-{rates[-1]:,.0f})" if len(rates) > 1 else ""
    print(f"  {name:<40} {statistics.median(rates):>9,.0f} {unit}  {spread}")


def verdict(what: str, met: bool, target: str) -> None:
    print(f"  {what}: {'meets' if met else 'MISSES'} {target}")


if __name__ == "__main__":
    main()
