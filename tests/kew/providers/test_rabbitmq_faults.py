"""The RabbitMQ provider when things break: the broker killed or restarted, a long handler."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest

from kew import QueueSink, QueueSource
from kew.errors import ProviderError
from kew.message import utcnow
from kew.providers import connect
from kew.providers.base import DeliveryOptions
from tests.contract.helpers import assert_empty
from tests.harness.services import service_unsupported

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def queue() -> str:
    return f"test.rabbitmq.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def local_rabbitmq(rabbitmq_server):
    if not rabbitmq_server.controllable:
        service_unsupported("cannot kill or restart the broker given by KEW_TEST_RABBITMQ_URL")
    return rabbitmq_server


def take(receiver, count: int, timeout: float) -> list:
    """Receive and ack up to ``count`` deliveries within ``timeout`` seconds."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and (left := deadline - time.monotonic()) > 0:
        delivery = receiver.receive(left)
        if delivery is not None:
            delivery.ack()
            got.append(delivery)
    return got


def test_heartbeats_go_on_while_a_handler_holds_a_delivery(rabbitmq_server, queue):
    provider = connect(rabbitmq_server.url, heartbeat=1)
    with provider.producer() as producer:
        producer.send(queue, b"long job")
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None
        time.sleep(4)  # the handler: without heart-beats the broker drops a link after ~2 s
        delivery.ack()
        assert receiver._generation == 1, "the receiver had to reconnect"
    assert_empty(provider, queue)
    provider.close()


@pytest.mark.one_leg(2)
def test_every_confirmed_send_survives_a_broker_kill(local_rabbitmq, queue):
    provider = connect(local_rabbitmq.url, reconnect_attempts=1)
    with provider.producer() as producer:
        producer.send(queue, b"first")
    # A quorum queue made seconds before a SIGKILL may come back empty on 3.10 (its
    # registration is not on disk yet): a long-lived queue is what this test is about.
    local_rabbitmq.restart()
    confirmed: list[bytes] = [b"first"]
    stopped: list[BaseException] = []

    def send_until_it_fails() -> None:
        with provider.producer() as producer:
            for n in range(100_000):
                payload = f"m-{n}".encode()
                try:
                    producer.send(queue, payload, DeliveryOptions(message_id=payload.decode()))
                except ProviderError as error:
                    stopped.append(error)
                    return
                confirmed.append(payload)

    sender = threading.Thread(target=send_until_it_fails)
    sender.start()
    deadline = time.monotonic() + 30
    while len(confirmed) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    local_rabbitmq.kill()
    sender.join(60)
    assert stopped, "the sender did not notice the broker was gone"
    local_rabbitmq.start()
    with provider.receiver(queue) as receiver:
        got = {d.payload for d in take(receiver, len(confirmed) + 1, 60)}
    assert set(confirmed) <= got, f"lost {len(set(confirmed) - got)} confirmed messages"
    provider.close()


@pytest.mark.slow
@pytest.mark.one_leg(2)
def test_a_scheduled_message_survives_a_broker_restart_and_is_not_early(local_rabbitmq, queue):
    provider = connect(local_rabbitmq.url)
    due = utcnow() + timedelta(seconds=15)
    with provider.producer() as producer:
        producer.send(queue, b"later", DeliveryOptions(deliver_at=due, message_id="later-1"))
    with provider.receiver(queue) as receiver:
        local_rabbitmq.restart()  # the receiver reconnects by itself
        delivery = receiver.receive(90)
        arrived = utcnow()
        assert delivery is not None and delivery.payload == b"later"
        delivery.ack()
    assert arrived >= due
    assert arrived <= due + timedelta(seconds=30)
    assert_empty(provider, queue)
    provider.close()


@pytest.mark.slow
@pytest.mark.one_leg(1)
def test_a_pending_retry_survives_a_broker_restart_and_is_not_early(local_rabbitmq, queue):
    provider = connect(local_rabbitmq.url)
    calls: list[tuple[float, int]] = []

    class FailsOnce:
        def consume_message(self, message):
            calls.append((time.monotonic(), message.delivery_count))
            if len(calls) == 1:
                raise RuntimeError("the first attempt fails")

    source = QueueSource(provider, queue)
    source.send({"job": 1})
    source.close()
    sink = QueueSink(provider, queue, FailsOnce(), retry=[12.0])
    deadline = time.monotonic() + 90
    while len(calls) < 1 and time.monotonic() < deadline:
        sink.poll(0.5)
    sink.close()  # the worker goes away: the retry waits in the broker, nowhere else
    assert len(calls) == 1
    local_rabbitmq.restart()
    sink = QueueSink(provider, queue, FailsOnce(), retry=[12.0])  # a new worker
    while len(calls) < 2 and time.monotonic() < deadline:
        sink.poll(0.5)
    sink.close()
    assert [count for _, count in calls] == [1, 2]
    assert calls[1][0] - calls[0][0] >= 12.0
    assert_empty(provider, queue)
    provider.close()
