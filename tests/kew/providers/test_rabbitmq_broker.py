"""The RabbitMQ provider against a real node: errors, failover, delivery counts."""

from __future__ import annotations

import uuid

import pika
import pytest

from kew.errors import ConfigurationError, SendError
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing
from tests.harness.services import free_port

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def queue() -> str:
    return f"test.rabbitmq.{uuid.uuid4().hex[:12]}"


def admin_channel(server):
    connection = pika.BlockingConnection(pika.URLParameters(server.url))
    return connection, connection.channel()


def test_a_message_for_a_deleted_queue_is_a_send_error_not_a_silent_drop(rabbitmq_server, queue):
    provider = connect(rabbitmq_server.url)
    with provider.producer() as producer:
        producer.send(queue, b"declares the queue")
        connection, channel = admin_channel(rabbitmq_server)
        channel.queue_delete(queue)
        connection.close()
        batch = [Outgoing(f"{queue}.other", b"fine"), Outgoing(queue, b"nowhere")]
        with pytest.raises(SendError, match="unroutable") as raised:
            producer.send_many(batch)
        assert raised.value.index == 1 and raised.value.queue == queue
        producer.send(queue, b"declared again")  # the next send declares the queue again
    provider.close()


def test_the_first_node_that_answers_is_used(rabbitmq_server, queue):
    user, password = rabbitmq_server.user, rabbitmq_server.password
    dead = free_port()
    url = f"amqp://{user}:{password}@127.0.0.1:{dead},127.0.0.1:{rabbitmq_server.port}/"
    provider = connect(url)
    with provider.producer() as producer:
        producer.send(queue, b"via the second node")
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(10)
        assert delivery is not None and delivery.payload == b"via the second node"
        delivery.ack()
    provider.close()


def test_a_wrong_password_fails_when_the_producer_is_made(rabbitmq_server):
    url = f"amqp://{rabbitmq_server.user}:wrong@127.0.0.1:{rabbitmq_server.port}/"
    provider = connect(url)
    with pytest.raises(ConfigurationError, match="refused user"):
        provider.producer()
    with pytest.raises(ConfigurationError, match="refused user"):
        provider.receiver("anything")


def test_a_queue_declared_otherwise_is_a_configuration_error(rabbitmq_server, queue):
    connection, channel = admin_channel(rabbitmq_server)
    channel.queue_declare(queue, durable=True)  # a classic queue
    connection.close()
    provider = connect(rabbitmq_server.url)
    with provider.producer() as producer, pytest.raises(ConfigurationError, match="x-queue-type"):
        producer.send(queue, b"x")
    with pytest.raises(ConfigurationError, match="x-queue-type"):
        provider.receiver(queue)
    provider.close()


def test_the_delivery_count_counts_deliveries_without_an_ack(rabbitmq_server, queue):
    provider = connect(rabbitmq_server.url)
    with provider.producer() as producer:
        producer.send(queue, b"x")
    for expected in (1, 2, 3):
        with provider.receiver(queue) as receiver:
            delivery = receiver.receive(10)
            assert delivery is not None
            assert delivery.delivery_count == expected
            assert delivery.redelivered == (expected > 1)
            if expected == 3:
                delivery.ack()
    provider.close()


def test_a_receiver_whose_queue_was_deleted_consumes_it_again(rabbitmq_server, queue):
    provider = connect(rabbitmq_server.url)
    with provider.receiver(queue) as receiver:
        connection, channel = admin_channel(rabbitmq_server)
        channel.queue_delete(queue)
        connection.close()
        assert receiver.receive(2) is None  # meanwhile the receiver declared it again
        with provider.producer() as producer:
            producer.send(queue, b"after the delete")
        delivery = receiver.receive(10)
        assert delivery is not None and delivery.payload == b"after the delete"
        delivery.ack()
    provider.close()


def test_past_its_delivery_limit_a_message_moves_to_its_queues_dead_letter_queue(
    rabbitmq_server, queue
):
    provider = connect(rabbitmq_server.url, delivery_limit=2)
    with provider.producer() as producer:
        producer.send(queue, b"poison", DeliveryOptions(message_id="p-1"))
    deliveries = 0
    for _ in range(6):  # a consumer that dies before its ack, again and again
        with provider.receiver(queue) as receiver:
            if receiver.receive(2) is None:
                break
            deliveries += 1
    assert deliveries == 3  # the first delivery and 2 more
    with provider.dead_letter_receiver([queue]) as dead:
        letter = dead.receive(10)
        assert letter is not None and letter.payload == b"poison"
        assert letter.message_id == "p-1"
        assert letter.queue == f"{queue}.dead" and letter.original_queue == queue
        letter.ack()
        assert dead.receive(0.5) is None
    provider.close()


def test_ack_many_hands_a_batch_to_the_io_thread_at_once(rabbitmq_server, queue, monkeypatch):
    provider = connect(rabbitmq_server.url)
    try:
        with provider.producer() as producer:
            producer.send_many([Outgoing(queue, b"%d" % i) for i in range(5)])
        with provider.receiver(queue, prefetch=5) as receiver:
            got = [receiver.receive(10.0)]
            while len(got) < 5:
                assert got[-1] is not None, f"only {len(got) - 1} of 5 arrived"
                got.extend(receiver.receive_ready(5 - len(got)) or [receiver.receive(10.0)])
            connection = receiver._connection
            handed = []
            real = connection.add_callback_threadsafe
            monkeypatch.setattr(
                connection,
                "add_callback_threadsafe",
                lambda callback: handed.append(callback) or real(callback),
            )
            receiver.ack_many(got)
            receiver.ack_many(got)  # already acked: nothing more
            assert len(handed) == 1  # one wake of the I/O thread for the batch
        assert provider.pending(queue) == 0  # all five acked before the receiver closed
    finally:
        provider.close()
