"""The receipt confirms a batch that survives a broker crash, and rides on no message."""

from __future__ import annotations

import uuid

import pytest

from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing

pytestmark = pytest.mark.artemis


def batch(queue: str, count: int) -> list[Outgoing]:
    return [
        Outgoing(queue, f"{i}".encode(), DeliveryOptions(message_id=f"{queue}-{i}"))
        for i in range(count)
    ]


def test_no_message_carries_the_receipt_header(artemis_server):
    queue = f"test.receipt.{uuid.uuid4().hex[:12]}"
    provider = connect(artemis_server.url)
    try:
        with provider.producer() as producer:
            producer.send_many(batch(queue, 3))
            producer.send(queue, b"one", DeliveryOptions(message_id=f"{queue}-single"))
        with provider.receiver(queue, prefetch=10) as consumer:
            headers = []
            for _ in range(4):
                delivery = consumer.receive(10)
                assert delivery is not None
                headers.append(delivery.headers)  # type: ignore[attr-defined]
                delivery.ack()
        assert [h for h in headers if "receipt" in h] == []
    finally:
        provider.close()


def test_a_confirmed_batch_survives_a_broker_killed_at_once(artemis_server):
    queue = f"test.receipt.{uuid.uuid4().hex[:12]}"
    provider = connect(artemis_server.url)
    try:
        with provider.producer() as producer:
            producer.send_many(batch(queue, 2000))
            artemis_server.kill()  # SIGKILL right after the receipt: no clean shutdown
        artemis_server.start()
        seen = set()
        with provider.receiver(queue, prefetch=1000) as consumer:
            while len(seen) < 2000 and (delivery := consumer.receive(10)) is not None:
                seen.add(delivery.message_id)
                delivery.ack()
        assert len(seen) == 2000
    finally:
        provider.close()
