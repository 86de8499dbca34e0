"""The Artemis provider against a real broker: storage, schedule, dedup, flow, bad input."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest

from kew.errors import ConfigurationError, ConnectionLost, SendError
from kew.message import utcnow
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing
from tests.harness.services import free_port

pytestmark = pytest.mark.artemis


@pytest.fixture
def artemis(artemis_server):
    provider = connect(artemis_server.url)
    yield provider
    provider.close()


@pytest.fixture
def queue() -> str:
    return f"test.artemis.{uuid.uuid4().hex[:12]}"


def drain(provider, queue, *, wait=1.0, limit=1000):
    """Receive and ack until nothing comes for ``wait`` seconds; return the payloads."""
    got = []
    with provider.receiver(queue) as consumer:
        while len(got) < limit:
            delivery = consumer.receive(wait)
            if delivery is None:
                break
            delivery.ack()
            got.append(delivery.payload)
    return got


def test_persistent_messages_survive_a_broker_restart(artemis_server, queue):
    provider = connect(artemis_server.url)
    with provider.producer() as producer:
        producer.send_many([Outgoing(queue, f"keep-{i}".encode()) for i in range(5)])
        producer.send(queue, b"volatile", DeliveryOptions(durable=False))
    provider.close()
    artemis_server.restart()
    provider = connect(artemis_server.url)
    try:
        assert drain(provider, queue) == [f"keep-{i}".encode() for i in range(5)]
    finally:
        provider.close()


def test_scheduled_message_arrives_at_its_time_not_before(artemis, queue):
    due = utcnow() + timedelta(seconds=1.5)
    with artemis.producer() as producer:
        producer.send(queue, b"later", DeliveryOptions(deliver_at=due))
    with artemis.receiver(queue) as consumer:
        delivery = consumer.receive(10)
        arrived = utcnow()
        assert delivery is not None and delivery.payload == b"later"
        delivery.ack()
    assert due - timedelta(milliseconds=50) <= arrived <= due + timedelta(seconds=1)


def test_a_batch_with_a_repeated_id_is_stored_once(artemis, queue):
    batch = [
        Outgoing(queue, f"m{i}".encode(), DeliveryOptions(message_id=f"id-{i % 3}"))
        for i in range(6)
    ]
    with artemis.producer() as producer:
        producer.send_many(batch)
        producer.send_many(batch)  # a relay publishing the same batch again
    assert drain(artemis, queue) == [b"m0", b"m1", b"m2"]


def test_header_escapes_and_binary_bodies_round_trip(artemis, queue):
    properties = {"path": "C:\\data\\run 1", "lines": "a\nb\r\nc", "colon": "k:v"}
    body = b"\x00\xff\xfe not utf-8 \x00\x80"
    with artemis.producer() as producer:
        producer.send(
            queue, body, DeliveryOptions(message_id="id:with\\escapes", properties=properties)
        )
    with artemis.receiver(queue) as consumer:
        delivery = consumer.receive(10)
        delivery.ack()
    assert delivery.payload == body
    assert delivery.message_id == "id:with\\escapes"
    assert delivery.properties == properties


def test_a_message_left_unacked_by_a_lost_connection_comes_back(artemis, queue):
    with artemis.producer() as producer:
        producer.send(queue, b"work", DeliveryOptions(message_id="w-1"))
    consumer = artemis.receiver(queue)
    first = consumer.receive(10)
    assert first is not None and not first.redelivered
    consumer._connection.wire.abort()  # the network drops the connection before the ack
    first.ack()  # belongs to the dead connection: dropped, not sent on the new one
    again = consumer.receive(10)
    assert again is not None and again.payload == b"work"
    assert again.redelivered and again.message_id == "w-1"
    again.ack()
    consumer.close()
    assert drain(artemis, queue, wait=0.5) == []


def test_window_zero_shares_slow_tasks_evenly(artemis, queue):
    with artemis.producer() as producer:
        producer.send_many([Outgoing(queue, str(i).encode()) for i in range(10)])
    counts = {"a": 0, "b": 0}
    lock = threading.Lock()

    def work(name):
        with artemis.receiver(queue, prefetch=1) as consumer:
            while (delivery := consumer.receive(1.0)) is not None:
                time.sleep(0.3)
                delivery.ack()
                with lock:
                    counts[name] += 1

    threads = [threading.Thread(target=work, args=(name,)) for name in counts]
    for thread in threads:
        thread.start()
        time.sleep(0.1)  # the first consumer has a head start
    for thread in threads:
        thread.join(30)
    assert sum(counts.values()) == 10
    assert 4 <= counts["a"] <= 6 and 4 <= counts["b"] <= 6, counts


def test_a_wide_window_lets_the_first_consumer_take_everything(artemis, queue):
    with artemis.producer() as producer:
        producer.send_many([Outgoing(queue, str(i).encode()) for i in range(10)])
    first = artemis.receiver(queue, prefetch=50)
    time.sleep(0.3)  # the broker pushes the whole window to it
    with artemis.receiver(queue) as second:
        assert second.receive(0.5) is None
    assert len(drain_consumer(first)) == 10
    first.close()


def drain_consumer(consumer):
    got = []
    while (delivery := consumer.receive(0.5)) is not None:
        delivery.ack()
        got.append(delivery.payload)
    return got


def test_failover_skips_a_dead_host(artemis_server, queue):
    dead = f"127.0.0.1:{free_port()}"
    url = artemis_server.url.replace("@", f"@{dead},", 1)
    provider = connect(url)
    try:
        with provider.producer() as producer:
            producer.send(queue, b"via the second host")
        assert drain(provider, queue) == [b"via the second host"]
    finally:
        provider.close()


def test_unreachable_broker_fails_fast_naming_host_and_port():
    port = free_port()
    began = time.monotonic()
    with pytest.raises(ConnectionLost, match=f"127.0.0.1:{port}"):
        connect(f"artemis://kew:kew@127.0.0.1:{port}/").producer()
    assert time.monotonic() - began < 2


def test_wrong_password_is_a_configuration_error(artemis_server):
    url = (
        f"artemis://{artemis_server.user}:not-the-password@"
        f"{artemis_server.stomp_host}:{artemis_server.stomp_port}/"
    )
    with pytest.raises(ConfigurationError, match="login refused by broker") as caught:
        connect(url).receiver("anything")
    assert "not-the-password" not in str(caught.value)


def test_oversized_properties_are_refused_before_anything_is_sent(artemis, queue):
    with artemis.producer() as producer, pytest.raises(ConfigurationError, match="payload"):
        producer.send_many(
            [
                Outgoing(queue, b"fine"),
                Outgoing(queue, b"too big", DeliveryOptions(properties={"blob": "x" * 100_000})),
            ]
        )
    assert drain(artemis, queue, wait=0.5) == []


def test_a_broker_refusal_names_the_queue_and_the_refused_message(artemis_server, queue):
    # Lifting Kew's own limit lets a 1 MB property reach Artemis, whose journal refuses it.
    provider = connect(artemis_server.url, max_header_bytes=10_000_000)
    batch = [
        Outgoing(queue, f"m{i}".encode(), DeliveryOptions(message_id=f"{queue}-{i}"))
        for i in range(5)
    ]
    batch[2] = Outgoing(
        queue,
        b"huge",
        DeliveryOptions(message_id=f"{queue}-2", properties={"blob": "x" * 1_000_000}),
    )
    try:
        with provider.producer() as producer:
            with pytest.raises(SendError) as caught:
                producer.send_many(batch)
            assert caught.value.index == 2
            assert caught.value.queue == queue
            assert queue in str(caught.value)
            producer.send(queue, b"after")  # the producer reconnects by itself
        assert drain(provider, queue) == [b"m0", b"m1", b"after"]
    finally:
        provider.close()


def test_heart_beats_keep_an_idle_consumer_connected(artemis_server, queue):
    # At 500 ms each way, a missing heart-beat on either side ends the connection within ~1 s.
    provider = connect(artemis_server.url, heartbeat=500)
    try:
        with provider.receiver(queue) as consumer:
            wire = consumer._connection.wire
            assert consumer.receive(3.0) is None
            assert consumer._connection.wire is wire and wire.usable
            with provider.producer() as producer:
                producer.send(queue, b"still there")
            delivery = consumer.receive(5)
            assert delivery is not None and delivery.payload == b"still there"
            delivery.ack()
            assert consumer._connection.wire is wire
    finally:
        provider.close()
