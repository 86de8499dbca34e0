"""Kew on a three-node RabbitMQ cluster: relays and consumers as processes, a node's crash.

Relays and consumers are separate ``manage.py`` processes on one
PostgreSQL database; each lists the cluster's nodes in its URL in an
order of its own, so relay 0 and consumer 0 start on node 0, relay 1 on
node 1 and consumer 1 on node 2, and each fails over along its list. The
work queue is a quorum queue with its leader on node 0: when node 0 dies,
the other two elect a new leader and keep every confirmed message, so
(unlike on the Artemis cluster) nothing waits for the dead node's return.
"""

from __future__ import annotations

import time

import pytest

import kew
from tests.harness.processes import consume, manage, relay, wait_for
from tests.scale.test_cluster import send, settle

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.one_leg(1)]

RELAYS = [(0, 1, 2), (1, 2, 0)]  # the node order of each relay's URL
CONSUMERS = [(0, 2, 1), (2, 0, 1)]  # and of each consumer's


def test_two_relays_and_two_consumers_on_three_nodes_handle_each_message_once(
    rabbitmq_cluster, scale_db, prefix, tmp_path
):
    queue, count = f"{prefix}.work", 200
    processes = start_workers(rabbitmq_cluster, scale_db, prefix, tmp_path)
    consumers = processes[2:]
    try:
        send(scale_db, queue, count, pause=0.05)
        wait_for(lambda: scale_db.distinct(queue) == count, 90, f"{count} messages handled")
        settle(lambda: sum(c.duplicates(queue) for c in consumers))
    finally:
        for process in processes:
            process.stop()
    effects = scale_db.effects(queue)
    assert len(effects) == count and scale_db.unsent() == 0
    assert sum(c.duplicates(queue) for c in consumers) == 0, "no message was delivered twice"
    shares = {c.name: sum(1 for _, worker, _ in effects if worker == c.name) for c in consumers}
    print(f"\nRabbitMQ cluster, 2 relays, 2 consumers: shares {shares}")
    assert min(shares.values()) >= count // 10, shares


def test_a_node_killed_mid_run_loses_no_confirmed_message_and_the_processes_fail_over(
    rabbitmq_cluster, scale_db, prefix, tmp_path
):
    queue, count, wave = f"{prefix}.work", 400, 100
    declare_on(rabbitmq_cluster, 0, queue)
    assert leader_of(rabbitmq_cluster, queue) == rabbitmq_cluster.nodes[0].nodename
    processes = start_workers(rabbitmq_cluster, scale_db, prefix, tmp_path)
    consumers = processes[2:]
    try:
        sender = send(scale_db, queue, count, pause=0.3, wait=False)
        wait_for(lambda: confirmed(scale_db, queue) >= count // 4, 60, "a quarter confirmed")
        rabbitmq_cluster.kill(0)  # while the relays send and the consumers take
        killed, killed_at = time.time(), (confirmed(scale_db, queue), scale_db.distinct(queue))
        assert sender.wait(120) == 0
        wait_for(lambda: scale_db.unsent() == 0, 90, "every outbox row confirmed by nodes 1, 2")
        wait_for(lambda: scale_db.distinct(queue) == count, 90, "every message, node 0 down")
        recovered = time.time() - killed
        # the relay and the consumer that started on node 0, alone now, take a second wave
        for other in (processes[1], processes[3]):
            assert other.stop() == 0
        manage(["scale_send", queue, "--count", str(wave), "--start", str(count), "--batch", "50",
                "--pause", "0.05"], scale_db.env("database://?direct=false"))  # fmt: skip
        wait_for(lambda: scale_db.distinct(queue) == count + wave, 60, "the second wave handled")
        settle(lambda: sum(c.duplicates(queue) for c in consumers), quiet=3.0)
        assert not rabbitmq_cluster.nodes[0].is_running(), "node 0 stayed down throughout"
    finally:
        for process in processes:
            process.stop()
    effects = scale_db.effects(queue)
    duplicates = sum(c.duplicates(queue) for c in consumers)
    print(
        f"\nRabbitMQ cluster, node 0 (the queue's leader) SIGKILLed with {killed_at[0]} of "
        f"{count} confirmed, {killed_at[1]} handled: all handled {recovered:.1f} s after the "
        "kill, node 0 still down; "
        f"{duplicates} duplicate deliveries reached the idempotent consumers, "
        f"{len(effects) - count - wave} had a second effect"
    )
    assert len(effects) == count + wave, "each message had one effect: the duplicates absorbed"
    assert {n for n, _, _ in effects} == set(range(count + wave))
    assert scale_db.unsent() == 0, "relay 0 sent the whole wave through nodes 1 and 2"
    wave_workers = {worker for n, worker, _ in effects if n >= count}
    assert wave_workers == {consumers[0].name}, "consumer 0 handled it through node 2"


def start_workers(cluster, database, prefix, logs) -> list:
    """Relays 0 and 1, then consumers 0 and 1, each over the cluster in its own node order."""
    processes = []
    for i, order in enumerate(RELAYS):
        env = database.env(cluster.url_for(*order), KEW_SCALE_QUEUES=prefix)
        processes.append(relay(f"relay-{i}", env, logs, "--batch-size", "50"))
    for i, order in enumerate(CONSUMERS):
        env = database.env(cluster.url_for(*order), KEW_SCALE_QUEUES=prefix)
        processes.append(consume(f"consumer-{i}", env, logs, f"{prefix}.work"))
    for process in processes:
        process.wait_output("started")
    return processes


def declare_on(cluster, index: int, queue: str) -> None:
    """Declare ``queue`` as Kew does, through node ``index`` (its leader then lives there)."""
    provider = kew.connect(cluster.node_url(index))
    try:
        provider.receiver(queue).close()
    finally:
        provider.close()


def leader_of(cluster, queue: str) -> str:
    """Return the node name of the leader of quorum queue ``queue`` (asked of node 1)."""
    listed = cluster.nodes[1].ctl("list_queues", "name", "leader", "--silent").stdout
    return dict(line.split("\t") for line in listed.splitlines() if "\t" in line)[queue]


def confirmed(database, queue: str) -> int:
    """Outbox rows of ``queue`` that the broker confirmed (marked sent)."""
    sql = "select count(*) from kew_django_outboxmessage where status = 'sent' and queue = %s"
    return int(database.query(sql, queue)[0][0])
