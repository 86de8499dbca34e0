"""Scale-out figures: relays and consumer processes on one Artemis node, two, and the database.

Usage::

    .venv/bin/python bench/scale.py [--relay-count 6000] [--consume-count 3000] [--db-count 1500]
        [--cpu-count 400] [--spin 0.02] [--only-cpu]

It starts PostgreSQL, one Artemis broker and a two-node Artemis cluster
with ``tests.harness`` (loopback, journals without fsync), migrates a fresh
database for the ``tests/scale`` app and runs ``manage.py kew_relay`` /
``kew_consume`` as separate processes, as in production:

- relay throughput with 1 and 2 relays (committed outbox rows ->
  broker-confirmed, measured by the rows' ``sent_at``), on 1 node and on 2
  (the relays list the nodes in different orders);
- consumer throughput with 1, 2 and 4 consumer processes of an idempotent
  consumer (a transaction, the idempotency record and an ack per message,
  measured by the effects' timestamps), on 1 node and on 2;
- the database provider with 1, 2 and 4 consumer processes;
- a CPU-bound handler (``--spin`` CPU seconds a message) in one thread, in
  two threads (``--concurrency 2``) and in two processes
  (``kew_consume --processes 2``); ``--only-cpu`` runs just that, on
  PostgreSQL alone.

With each figure it prints the CPU seconds each process used and the
brokers' CPU, and the machine's load: on a 2-core machine shared with
other work the CPU is the limit, not Kew or the broker. A script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.harness import PostgresServer  # noqa: E402
from tests.harness.artemis.cluster import ArtemisCluster  # noqa: E402
from tests.harness.artemis.local import LocalArtemis  # noqa: E402
from tests.harness.processes import (  # noqa: E402
    Process,
    ScaleDatabase,
    consume,
    group_cpu_seconds,
    manage,
    relay,
    wait_for,
)

LOGS = Path(os.environ.get("TMPDIR", "/tmp")) / f"kew-bench-scale-{os.getpid()}"


def brokers_cpu(brokers: list[LocalArtemis]) -> float:
    return sum(group_cpu_seconds(b._proc.pid) for b in brokers if b._proc is not None)


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Phase:
    """Measure the CPU of the processes and brokers of one figure."""

    def __init__(self, brokers: list[LocalArtemis]):
        self.brokers = brokers
        self.broker_cpu = brokers_cpu(brokers)
        self.busy = machine_busy()

    def report(self, label: str, rate: float, processes: list[Process], cpu: list[float]) -> None:
        broker = brokers_cpu(self.brokers) - self.broker_cpu
        busy, total = machine_busy()
        use = (busy - self.busy[0]) / max(total - self.busy[1], 1) * os.cpu_count()
        each = " ".join(f"{c:.1f}" for c in cpu)
        print(
            f"  {label:<34} {rate:>8,.0f} msg/s   cpu s: processes [{each}]"
            f" brokers {broker:.1f}; machine {use:.1f} of {os.cpu_count()} cores busy",
            flush=True,
        )


def stop_all(processes: list[Process]) -> list[float]:
    cpu = [p.cpu_seconds() for p in processes]
    for p in processes:
        p.stop()
    return cpu


def bench_relay(db: ScaleDatabase, urls: list[str], brokers, count: int, tag: str) -> None:
    queue = f"bench{tag}.work"
    manage(
        ["scale_send", queue, "--count", str(count), "--batch", "1000"],
        db.env("database://?direct=false"),
    )
    phase = Phase(brokers)
    relays = [
        relay(f"relay-{tag}-{i}", db.env(url), LOGS, "--batch-size", "500")
        for i, url in enumerate(urls)
    ]
    wait_for(lambda: db.unsent() == 0, 300, "the relays to empty the outbox", poll=0.1)
    cpu = stop_all(relays)
    ((first, last),) = db.query(
        "select extract(epoch from min(sent_at)), extract(epoch from max(sent_at)) "
        "from kew_django_outboxmessage where queue = %s",
        queue,
    )
    # sent_at is a batch's time: the first batch's publication is not counted
    rate = (count - 500) / max(float(last) - float(first), 1e-3)
    phase.report(f"{len(urls)} relay(s)", rate, relays, cpu)


def bench_consume(db: ScaleDatabase, urls: list[str], brokers, count: int, tag: str) -> None:
    prefix = f"bench{tag}"
    queue = f"{prefix}.work"
    share = count // len(set(urls)) if len(set(urls)) > 1 else count
    for i, url in enumerate(sorted(set(urls))):  # the backlog on every node of the URLs
        manage(
            ["scale_send", queue, "--count", str(share), "--start", str(i * share),
             "--batch", "500", "--direct"],
            db.env(url, KEW_SCALE_QUEUES=prefix),
        )  # fmt: skip
    total = share * len(set(urls))
    phase = Phase(brokers)
    consumers = [
        consume(f"consume-{tag}-{i}", db.env(url, KEW_SCALE_QUEUES=prefix), LOGS, queue)
        for i, url in enumerate(urls)
    ]
    wait_for(lambda: db.distinct(queue) >= total, 600, f"{total} handled", poll=0.2)
    cpu = stop_all(consumers)
    rate = rate_of(db.effects(queue))
    phase.report(f"{len(urls)} consumer process(es)", rate, consumers, cpu)


def bench_cpu_bound(db: ScaleDatabase, spin: float, count: int) -> None:
    """One CPU-bound consumer: 1 thread, 2 threads (``--concurrency 2``), 2 processes."""
    url = "database://?poll_interval=0.05"
    for tag, label, options in (
        ("t1", "1 process, 1 thread", []),
        ("t2", "1 process, --concurrency 2", ["--concurrency", "2"]),
        ("p2", "--processes 2", ["--processes", "2"]),
    ):
        queue = f"benchcpu{tag}.plain"
        env = db.env(url, KEW_SCALE_QUEUES=f"benchcpu{tag}")
        manage(["scale_send", queue, "--count", str(count), "--spin", str(spin), "--direct"], env)
        phase = Phase([])
        worker = Process(f"cpu-{tag}", ["kew_consume", queue, *options], env, LOGS).start()
        wait_for(lambda q=queue: db.distinct(q) >= count, 600, f"{count} handled", poll=0.2)
        cpu = stop_all([worker])  # the supervisor's own CPU only, with --processes
        phase.report(label, rate_of(db.effects(queue)), [worker], cpu)


def rate_of(effects: list[tuple[int, str, float]]) -> float:
    """Messages per second once every process is running: the middle 80% of the effects."""
    times = sorted(at for _, _, at in effects)
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    return (high - low) / max(times[high] - times[low], 1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relay-count", type=int, default=6000)
    parser.add_argument("--consume-count", type=int, default=3000)
    parser.add_argument("--db-count", type=int, default=1500)
    parser.add_argument("--cpu-count", type=int, default=400)
    parser.add_argument("--spin", type=float, default=0.02, help="CPU s per CPU-bound message")
    parser.add_argument(
        "--only-cpu", action="store_true", help="only the CPU-bound handler's figures"
    )
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    with contextlib.ExitStack() as services:
        postgres = services.enter_context(PostgresServer())
        db = ScaleDatabase(postgres, LOGS)
        print(
            f"PostgreSQL ({postgres.mode}); {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} at start"
        )
        print(
            f"\nCPU-bound handler ({args.cpu_count} messages, {args.spin * 1000:.0f} ms of CPU "
            "each, database provider, prefetch 1)"
        )
        bench_cpu_bound(db, args.spin, args.cpu_count)
        if args.only_cpu:
            db.drop()
            return
        single = services.enter_context(LocalArtemis(java_memory="384M"))
        cluster = services.enter_context(ArtemisCluster(2))
        print("\nOne Artemis broker and a 2-node cluster (local, no fsync)")
        one, nodes = [single.url], [cluster.url_for(0, 1), cluster.url_for(1, 0)]
        print(f"\nRelay throughput ({args.relay_count} outbox rows, batches of 500)")
        print(" on 1 node")
        for n in (1, 2):
            bench_relay(db, one * n, [single], args.relay_count, f"r1n{n}")
        print(" on 2 nodes (relay i starts on node i)")
        for n in (1, 2):
            bench_relay(db, nodes[:n], cluster.nodes, args.relay_count, f"r2n{n}")
        print(
            f"\nConsumer throughput ({args.consume_count} messages, idempotent consumer, "
            "prefetch 1)"
        )
        print(" on 1 node")
        for n in (1, 2, 4):
            bench_consume(db, one * n, [single], args.consume_count, f"c1n{n}")
        print(" on 2 nodes (process i starts on node i % 2; the backlog split over both)")
        for n in (1, 2, 4):
            bench_consume(db, (nodes * 2)[:n], cluster.nodes, args.consume_count, f"c2n{n}")
        print(f"\nDatabase provider ({args.db_count} messages, idempotent consumer)")
        for n in (1, 2, 4):
            bench_consume(db, ["database://?poll_interval=0.05"] * n, [], args.db_count, f"d{n}")
        db.drop()
    print(
        f"\n{time.monotonic() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end; "
        f"process logs in {LOGS}"
    )


if __name__ == "__main__":
    main()
