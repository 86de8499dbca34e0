"""The RabbitMQ provider on a three-node cluster: quorum queues keep what was confirmed."""

from __future__ import annotations

import time
import uuid

import pytest

from kew.errors import ProviderError
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.one_leg(1)]


def send_until_stored(producer, queue: str, payload: bytes, timeout: float = 60.0) -> None:
    """Send as a relay does: again, after a pause, while the broker is not ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            # a lost connection is retried on the next node at once (the message has an id);
            # a nack (the queue is electing a new leader) is raised: send again later
            producer.send(queue, payload, DeliveryOptions(message_id=payload.decode()))
            return
        except ProviderError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_node_killed_loses_no_confirmed_message_and_clients_fail_over(rabbitmq_cluster):
    queue = f"test.cluster.{uuid.uuid4().hex[:12]}"
    provider = connect(rabbitmq_cluster.url)  # node 0 first: it declares the queue
    batch = [
        Outgoing(queue, f"m-{n}".encode(), DeliveryOptions(message_id=f"m-{n}")) for n in range(200)
    ]
    with provider.producer() as producer:
        producer.send_many(batch)
        rabbitmq_cluster.kill(0)
        send_until_stored(producer, queue, b"after the kill")
    expected = {item.payload for item in batch} | {b"after the kill"}
    got = set()
    with provider.receiver(queue, prefetch=50) as receiver:
        while len(got) < len(expected) and (delivery := receiver.receive(30)) is not None:
            delivery.ack()
            got.add(delivery.payload)
    assert got == expected
    provider.close()
