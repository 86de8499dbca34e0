"""The cost of metrics and tracing on relay and consumer throughput, side by side in one run.

Usage::

    .venv/bin/python bench/observability.py [--count 5000] [--rounds 3]

It starts PostgreSQL and Artemis with ``tests.harness`` (loopback), migrates a
fresh database and, in interleaved rounds, measures the relay (committed
rows -> broker-confirmed messages, batch 500) and one consumer thread
(prefetch 100, each delivery in a transaction, acked) three ways: no
observer; Prometheus metrics; metrics and OpenTelemetry tracing (the SDK
with an in-memory exporter, every span recorded, every row carrying a trace
context). It prints each rate and the median of the per-round ratios to
"off". Target: metrics cost under 5%. A script, not a test.
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

MODES = ("off", "metrics", "metrics+tracing")


@dataclass
class Job:
    n: int
    path: str = "/data/lab-3/2026-11-28/plate-0042/well-B7/field-003.ome.tiff"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="messages per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()

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
        print(f"PostgreSQL ({postgres.mode}) and Artemis {artemis.version} ({artemis.mode})")
        Bench(args).run()


class Bench:
    def __init__(self, args):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from kew_django.providers import get_provider

        self.args = args
        self.provider = get_provider()
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        trace.set_tracer_provider(tracer_provider)
        self.tracer = trace.get_tracer("bench")
        self.tag = uuid.uuid4().hex[:8]

    def observer(self, mode: str):
        from kew_django.observability import Observers
        from kew_django.observability.metrics import Metrics
        from kew_django.observability.tracing import Tracing

        if mode == "off":
            return None
        parts = [Metrics(system="activemq")]
        if mode == "metrics+tracing":
            parts.append(Tracing(system="activemq"))
        return Observers(parts)

    def fill(self, name: str, count: int) -> str:
        """Commit ``count`` outbox rows (sent inside a span, so each carries a trace context)."""
        from django.db import transaction

        from kew_django import Channel

        channel = Channel(f"bench.{self.tag}.{name}.{uuid.uuid4().hex[:6]}", payload=Job)
        with self.tracer.start_as_current_span("request"):
            for start in range(0, count, 1000):
                with transaction.atomic():
                    channel.send_many([Job(i) for i in range(start, min(start + 1000, count))])
        return channel.queue

    def relay_rate(self, mode: str, count: int) -> float:
        from kew_django.relay.publisher import Relay

        queue = self.fill("relay", count)
        relay = Relay(self.provider, batch_size=500, queues=[queue], observer=self.observer(mode))
        began = time.perf_counter()
        relayed = relay.relay_all()
        elapsed = time.perf_counter() - began
        assert relayed == count, (relayed, count)
        relay.close()
        self.consume_rate("off", count, queue=queue)  # empty the queue, unmeasured
        return count / elapsed

    def consume_rate(self, mode: str, count: int, *, queue: str | None = None) -> float:
        from kew_django.relay.publisher import Relay
        from kew_django.workers.registry import ConsumerSpec
        from kew_django.workers.worker import Worker, WorkerStats

        if queue is None:
            queue = self.fill("consume", count)
            Relay(self.provider, batch_size=500, queues=[queue]).relay_all()
        stats = WorkerStats()
        spec = ConsumerSpec(queue, lambda job: None, payload=Job, prefetch=100)
        worker = Worker(spec, self.provider, stats=stats, observer=self.observer(mode))
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        began = time.perf_counter()
        thread.start()
        while sum(stats.counts.values()) < count and time.perf_counter() - began < 300:
            time.sleep(0.005)
        elapsed = time.perf_counter() - began
        stop.set()
        thread.join(30)
        return sum(stats.counts.values()) / elapsed

    def run(self) -> None:
        count = self.args.count
        self.relay_rate("off", min(count, 1000))  # warm-up
        self.consume_rate("off", min(count, 1000))
        rates = {what: {mode: [] for mode in MODES} for what in ("relay", "consumer")}
        for round_ in range(self.args.rounds):
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                rates["relay"][mode].append(self.relay_rate(mode, count))
                rates["consumer"][mode].append(self.consume_rate(mode, count))
                self.spans.clear()
        print(
            f"\nThroughput with and without observability ({count} messages, "
            f"median of {self.args.rounds} interleaved rounds)"
        )
        for what, by_mode in rates.items():
            label = "relay, batch 500" if what == "relay" else "consumer, prefetch 100, 1 thread"
            for mode in MODES:
                runs = sorted(by_mode[mode])
                print(
                    f"  {label:<34} {mode:<16} {statistics.median(runs):>9,.0f} msg/s  "
                    f"({runs[0]:,.0f}-{runs[-1]:,.0f})"
                )
            for mode in MODES[1:]:
                ratios = sorted(
                    on / off for on, off in zip(by_mode[mode], by_mode["off"], strict=True)
                )
                cost = 1 - statistics.median(ratios)
                target = " (target: under 5%)" if mode == "metrics" else ""
                met = "" if mode != "metrics" else (": meets" if cost < 0.05 else ": MISSES")
                print(
                    f"  {what} cost of {mode}: {cost:+.1%} "
                    f"(per-round {1 - ratios[-1]:+.1%} to {1 - ratios[0]:+.1%}){met}{target}"
                )


if __name__ == "__main__":
    main()
