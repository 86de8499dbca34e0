"""Throughput of confirmed sends to Artemis: raw stomp.py against Kew's provider.

Usage::

    .venv/bin/python bench/artemis_send.py [--url artemis://u:p@host:61613] [--count 20000]
        [--size 256] [--batch 500] [--rounds 3] [--no-fsync]

Without ``--url`` it starts a throwaway broker with ``tests.harness.artemis``
(journal synced to disk unless ``--no-fsync``). Every run sends the same
number of persistent messages of the same size to a queue of its own:

- raw stomp.py, pipelined, one receipt on the last frame;
- raw stomp.py, one receipt per message (a round trip each);
- the provider's ``send_many`` in batches (one receipt per batch);
- the provider's consumer: receive + ack every message of its queue.

It prints messages per second for each (the median of ``--rounds``
interleaved rounds, except the slow receipt-per-message run, done once),
and the ratio of the provider's batched send to raw pipelined stomp.py.
It is a script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import stomp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kew.providers import connect  # noqa: E402
from kew.providers.base import Outgoing  # noqa: E402

SEND_HEADERS = {"persistent": "true", "destination-type": "ANYCAST"}


class Receipts(stomp.ConnectionListener):
    """Count receipts as they come (on stomp.py's I/O thread)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.seen: set[str] = set()

    def on_receipt(self, frame):
        with self.cond:
            self.seen.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def wait(self, receipt: str, timeout: float = 120.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: receipt in self.seen, timeout):
                raise TimeoutError(f"no receipt {receipt}")
            self.seen.discard(receipt)


def raw_connection(url: str) -> tuple[stomp.Connection12, Receipts]:
    parts = urlsplit(url)
    conn = stomp.Connection12(
        [(parts.hostname, parts.port or 61613)], auto_decode=False, heartbeats=(10_000, 10_000)
    )
    receipts = Receipts()
    conn.set_listener("receipts", receipts)
    conn.connect(unquote(parts.username or ""), unquote(parts.password or ""), wait=True)
    return conn, receipts


def raw_pipelined(url: str, queue: str, payload: bytes, count: int) -> float:
    conn, receipts = raw_connection(url)
    began = time.perf_counter()
    for i in range(count):
        headers = dict(SEND_HEADERS)
        if i == count - 1:
            headers["receipt"] = "last"
        conn.send(queue, payload, headers=headers)
    receipts.wait("last")
    elapsed = time.perf_counter() - began
    conn.disconnect()
    return elapsed


def raw_receipt_each(url: str, queue: str, payload: bytes, count: int) -> float:
    conn, receipts = raw_connection(url)
    began = time.perf_counter()
    for i in range(count):
        conn.send(queue, payload, headers={**SEND_HEADERS, "receipt": str(i)})
        receipts.wait(str(i))
    elapsed = time.perf_counter() - began
    conn.disconnect()
    return elapsed


def provider_send(url: str, queue: str, payload: bytes, count: int, batch: int) -> float:
    provider = connect(url)
    with provider.producer() as producer:
        began = time.perf_counter()
        for start in range(0, count, batch):
            producer.send_many([Outgoing(queue, payload)] * min(batch, count - start))
        elapsed = time.perf_counter() - began
    provider.close()
    return elapsed


def provider_consume(url: str, queue: str, count: int, prefetch: int) -> float:
    provider = connect(url)
    with provider.receiver(queue, prefetch=prefetch) as consumer:
        began = time.perf_counter()
        for received in range(count):
            delivery = consumer.receive(30)
            if delivery is None:
                raise RuntimeError(f"only {received} of {count} messages came")
            delivery.ack()
        elapsed = time.perf_counter() - began
    provider.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="artemis://user:password@host:61613 (default: start one)")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-fsync", action="store_true", help="broker started here only")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from tests.harness.artemis import ArtemisServer

            server = ArtemisServer(
                fsync=not args.no_fsync, java_options=(), use_docker=False, java_memory="1G"
            )
            stack.enter_context(server)
            url = server.url
            sync = "off" if args.no_fsync else "on"
            print(f"broker: Artemis {server.version} started here (journal fsync {sync})")
        run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    payload = bytes(i % 251 for i in range(args.size))
    count, batch = args.count, args.batch
    tag = uuid.uuid4().hex[:8]
    used: list[str] = []

    def fresh(name: str) -> str:
        used.append(f"bench.{tag}.{name}.{len(used)}")
        return used[-1]

    raw_pipelined(url, fresh("warmup"), payload, min(count, 5000))  # JIT, journal files
    provider_send(url, fresh("warmup"), payload, min(count, 5000), batch)
    raw_runs, kew_runs, consume_runs = [], [], []
    for _ in range(args.rounds):  # interleaved, so a busy machine slows both alike
        raw_runs.append(raw_pipelined(url, fresh("raw"), payload, count))
        queue = fresh("kew")
        kew_runs.append(provider_send(url, queue, payload, count, batch))
        consume_runs.append(provider_consume(url, queue, count, args.prefetch))
        used.remove(queue)  # consumed already
    each = raw_receipt_each(url, fresh("each"), payload, count)

    print(
        f"{count} persistent messages of {args.size} bytes each; "
        f"median of {args.rounds} interleaved rounds (slowest-fastest)"
    )
    rows = [
        ("raw stomp.py, pipelined, 1 receipt", raw_runs),
        ("raw stomp.py, 1 receipt per message", [each]),
        (f"kew send_many, batches of {batch}", kew_runs),
        (f"kew consume + ack, prefetch {args.prefetch}", consume_runs),
    ]
    for name, runs in rows:
        rates = sorted(count / seconds for seconds in runs)
        spread = f"({rates[0]:,.0f}-{rates[-1]:,.0f})" if len(rates) > 1 else ""
        print(f"  {name:<40} {statistics.median(rates):>9,.0f} msg/s  {spread}".rstrip())
    ratio = statistics.median(raw_runs) / statistics.median(kew_runs)
    print(f"  kew send_many / raw pipelined: {ratio:.0%}")
    for queue in used:  # leave an external broker as it was
        size = min(count, 5000) if ".warmup." in queue else count
        provider_consume(url, queue, size, args.prefetch)


if __name__ == "__main__":
    main()
