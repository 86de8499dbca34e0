"""RabbitMQ's memory alarm blocks publishers: the producer raises BrokerBlocked, stores no copy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kew.errors import BrokerBlocked
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing
from tests.contract.helpers import receive_all
from tests.harness.services import service_unsupported

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]
DEFAULT_WATERMARK = "0.4"  # RabbitMQ's default, which the harness's node keeps


@pytest.fixture
def alarm(rabbitmq_server) -> Iterator:
    """Raise a memory alarm on the harness's node; call the result to clear it."""
    if not hasattr(rabbitmq_server, "ctl"):
        service_unsupported("raising a memory alarm (rabbitmqctl)")

    def clear() -> None:
        rabbitmq_server.ctl("set_vm_memory_high_watermark", DEFAULT_WATERMARK)

    rabbitmq_server.ctl("set_vm_memory_high_watermark", "0.00001")
    try:
        yield clear
    finally:
        clear()


def test_the_same_batch_sent_again_while_blocked_is_stored_once(rabbitmq_server, alarm):
    queue = f"test.flow.{uuid.uuid4().hex[:12]}"
    provider = connect(f"{rabbitmq_server.url}?confirm_timeout=1")
    batch = [
        Outgoing(queue, b"%d" % i, DeliveryOptions(message_id=f"{queue}-{i}")) for i in range(5)
    ]
    try:
        with provider.producer() as producer:
            for _ in range(2):
                with pytest.raises(BrokerBlocked, match="blocking publishers"):
                    producer.send_many(batch)
            alarm()
            producer.send_many(batch)  # waits for the copies already written
        assert [d.message_id for d in receive_all(provider, queue, 5)] == [
            o.options.message_id for o in batch
        ]
        assert provider.pending(queue) == 0  # no second copy
    finally:
        provider.close()


def test_another_batch_after_a_blocked_one_is_really_sent(rabbitmq_server, alarm):
    queue = f"test.flow.{uuid.uuid4().hex[:12]}"
    provider = connect(f"{rabbitmq_server.url}?confirm_timeout=1")
    try:
        with provider.producer() as producer:
            with pytest.raises(BrokerBlocked):
                producer.send(queue, b"first, no id")
            alarm()
            producer.send(queue, b"second, no id")  # never taken for the first one
        payloads = {d.payload for d in receive_all(provider, queue, provider.pending(queue))}
        assert b"second, no id" in payloads
    finally:
        provider.close()
