"""Queue depth (Capability.QUEUE_DEPTH): who can count a queue's messages, and what counts."""

from __future__ import annotations

import time
import uuid

import pytest

from kew.errors import UnsupportedCapability
from kew.providers import connect
from kew.providers.base import Capability
from kew.providers.memory import MemoryProvider
from tests.harness.services import service_unsupported


def test_a_provider_without_the_capability_says_so():
    provider = connect("artemis://u:p@127.0.0.1:1")  # nothing connects before a producer
    assert Capability.QUEUE_DEPTH not in provider.capabilities
    with pytest.raises(UnsupportedCapability, match="cannot count"):
        provider.pending("q")


def test_the_memory_provider_counts_its_queue():
    provider = MemoryProvider()
    assert Capability.QUEUE_DEPTH in provider.capabilities
    with provider.producer() as producer:
        producer.send("q", b"one")
        producer.send("q", b"two")
    assert provider.pending("q") == 2


def wait_for_count(provider, queue: str, expected: int, timeout: float = 10.0) -> None:
    """Wait until ``provider.pending(queue)`` is ``expected``; fail with the last count."""
    deadline = time.monotonic() + timeout
    while (count := provider.pending(queue)) != expected:
        assert time.monotonic() < deadline, f"{queue}: {count} pending, not {expected}"
        time.sleep(0.05)


@pytest.mark.rabbitmq
def test_rabbitmq_counts_ready_messages_and_a_missing_queue_as_empty(rabbitmq_server):
    queue = f"test.depth.{uuid.uuid4().hex[:12]}"
    provider = connect(rabbitmq_server.url)
    try:
        assert Capability.QUEUE_DEPTH in provider.capabilities
        assert provider.pending(queue) == 0  # not declared yet
        with provider.producer() as producer:
            for n in range(3):
                producer.send(queue, b"%d" % n)
        assert provider.pending(queue) == 3
        with provider.receiver(queue) as receiver:
            delivery = receiver.receive(10)
            assert delivery is not None
            delivery.ack()
        # The ack and the unacked prefetch going back are the broker's to apply: wait for it.
        wait_for_count(provider, queue, 2)
        assert provider.pending(f"{queue}.missing") == 0  # the counting channel survives a 404
        assert provider.pending(queue) == 2
    finally:
        provider.close()


@pytest.mark.rabbitmq
def test_rabbitmq_counts_again_after_the_broker_closed_the_counting_connection(rabbitmq_server):
    if not hasattr(rabbitmq_server, "ctl"):
        service_unsupported("closing connections (rabbitmqctl)")
    queue = f"test.depth.{uuid.uuid4().hex[:12]}"
    provider = connect(rabbitmq_server.url)
    try:
        with provider.producer() as producer:
            producer.send(queue, b"one")
        assert provider.pending(queue) == 1
        rabbitmq_server.ctl("close_all_connections", "test: an idle connection dropped")
        assert provider.pending(queue) == 1  # a new connection, not ConnectionLost
    finally:
        provider.close()
