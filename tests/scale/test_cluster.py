"""Kew on a symmetric two-node Artemis cluster: load balancing, redistribution, a node's crash.

Relays and consumers are separate ``manage.py`` processes on one
PostgreSQL database; each lists the nodes in its URL in its own order,
so relay 0 and consumer 0 start on node 0, relay 1 and consumer 1 on
node 1, and each fails over to the other node.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter

import pytest

import kew
from kew.providers.base import DeliveryOptions, Outgoing
from tests.harness.processes import MANAGE, ROOT, consume, manage, relay, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.artemis, pytest.mark.one_leg(2)]


def test_a_consumer_on_node_b_alone_gets_what_was_sent_to_node_a(artemis_cluster):
    queue = f"scale.redistribution.{uuid.uuid4().hex[:8]}"
    to_a = kew.connect(artemis_cluster.url_for(0))
    from_b = kew.connect(artemis_cluster.url_for(1))
    try:
        with to_a.producer() as producer:  # no consumer anywhere yet: stored on node A
            producer.send_many(
                [
                    Outgoing(queue, b"%d" % n, DeliveryOptions(message_id=f"m{n}"))
                    for n in range(200)
                ]
            )
        receiver = from_b.receiver(queue, prefetch=50)
        got = []
        while len(got) < 200 and (delivery := receiver.receive(timeout=20)) is not None:
            got.append(int(delivery.payload))
            delivery.ack()
        receiver.close()
    finally:
        to_a.close()
        from_b.close()
    assert sorted(got) == list(range(200)), "redistributed from node A to node B's consumer"


def test_two_relays_and_two_consumers_share_the_work_and_handle_each_message_once(
    artemis_cluster, scale_db, prefix, tmp_path
):
    queue, count = f"{prefix}.work", 1000
    processes = start_workers(artemis_cluster, scale_db, prefix, tmp_path)
    try:
        send(scale_db, queue, count, pause=0.05)
        wait_for(lambda: scale_db.distinct(queue) == count, 120, f"{count} messages handled")
        time.sleep(1.5)  # anything delivered twice would show now
    finally:
        for process in processes:
            process.stop()
    effects = scale_db.effects(queue)
    assert len(effects) == count and scale_db.unsent() == 0
    shares = Counter(worker for _, worker, _ in effects)
    print(f"\ncluster, 2 relays, 2 consumers: shares {dict(shares)}")
    assert set(shares) == {"consumer-0", "consumer-1"}, "both consumers get a share"
    assert min(shares.values()) >= count // 10, shares


def test_a_node_killed_mid_run_loses_nothing_and_its_duplicates_are_absorbed(
    artemis_cluster, scale_db, prefix, tmp_path
):
    queue, count = f"{prefix}.work", 1500
    processes = start_workers(artemis_cluster, scale_db, prefix, tmp_path)
    consumers = processes[2:]
    node = artemis_cluster.nodes[0]
    try:
        sender = send(scale_db, queue, count, pause=0.1, wait=False)
        wait_for(lambda: scale_db.distinct(queue) >= count // 4, 90, "a quarter handled")
        node.kill()
        killed_at = scale_db.distinct(queue)
        assert sender.wait(120) == 0
        # the relays and consumers carry on through node 1 ...
        wait_for(lambda: scale_db.unsent() == 0, 90, "every outbox row confirmed by node 1")
        settle(lambda: scale_db.distinct(queue))
        stranded = count - scale_db.distinct(queue)
        # ... and what node 0 held when it died comes back with it
        node.start()
        wait_for(lambda: scale_db.distinct(queue) == count, 120, "every message handled")
        settle(lambda: sum(c.duplicates(queue) for c in consumers), quiet=4.0)
    finally:
        for process in processes:
            process.stop()
    effects = scale_db.effects(queue)
    duplicates = sum(c.duplicates(queue) for c in consumers)
    print(
        f"\ncluster, node 0 SIGKILLed after {killed_at} of {count} handled: "
        f"{stranded} waited on node 0 for its return; {duplicates} duplicate deliveries "
        f"reached the idempotent consumers, {len(effects) - count} had a second effect"
    )
    assert len(effects) == count, "each message had one effect: the duplicates were absorbed"
    assert {n for n, _, _ in effects} == set(range(count))


def start_workers(cluster, database, prefix, logs) -> list:
    """Relay 0 and consumer 0 on nodes (0, 1), relay 1 and consumer 1 on (1, 0)."""
    processes = []
    for i, order in enumerate([(0, 1), (1, 0)]):
        env = database.env(cluster.url_for(*order), KEW_SCALE_QUEUES=prefix)
        processes.append(relay(f"relay-{i}", env, logs, "--batch-size", "50"))
    for i, order in enumerate([(0, 1), (1, 0)]):
        env = database.env(cluster.url_for(*order), KEW_SCALE_QUEUES=prefix)
        processes.append(consume(f"consumer-{i}", env, logs, f"{prefix}.work"))
    for process in processes:
        process.wait_output("started")
    return processes


OUTBOX = "database://?direct=false"  # the sender writes outbox rows; the relays carry them


def send(database, queue, count, *, pause, wait=True):
    """Write ``count`` outbox rows in transactions of 50 (``wait=False``: in the background)."""
    args = ["scale_send", queue, "--count", str(count), "--batch", "50", "--pause", str(pause)]
    if wait:
        manage(args, database.env(OUTBOX))
        return None
    return subprocess.Popen([*MANAGE, *args], cwd=ROOT, env=database.env(OUTBOX))


def settle(measure, *, quiet: float = 2.0, timeout: float = 60.0) -> None:
    """Wait until ``measure()`` has not changed for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = measure(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        if (now := measure()) != last:
            last, since = now, time.monotonic()
