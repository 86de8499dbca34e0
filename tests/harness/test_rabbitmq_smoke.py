"""The RabbitMQ node from tests.harness is real: AMQP round trips with pika itself.

No kew provider is involved: these tests check the harness's lifecycle and
the broker facts in DESIGN.md (quorum queues, ``x-delivery-count``,
publisher confirms, mandatory publishing, TTL dead-lettering) against the
real broker.
"""

from __future__ import annotations

import time
import uuid

import pika
import pika.exceptions
import pytest

from tests.harness.rabbitmq import RabbitServer
from tests.harness.services import service_unsupported

pytestmark = pytest.mark.rabbitmq

QUORUM = {"x-queue-type": "quorum"}
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def channel_of(server: RabbitServer):
    """Return a connection and a confirming channel on ``server``."""
    parameters = pika.URLParameters(server.url)
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.confirm_delivery()
    return connection, channel


def take(channel, queue: str, timeout: float = 10.0):
    """Return (method, properties, body) of the next message of ``queue``; fail after a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue)
        if method is not None:
            return method, properties, body
        time.sleep(0.02)
    raise AssertionError(f"nothing arrived on {queue!r} within {timeout} s")


def test_a_quorum_queue_counts_redeliveries(rabbitmq_server):
    connection, channel = channel_of(rabbitmq_server)
    queue = f"smoke.{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    channel.basic_publish("", queue, b"x", PERSISTENT, mandatory=True)
    method, properties, _ = take(channel, queue)
    assert not method.redelivered
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, properties, _ = take(channel, queue)
    assert method.redelivered
    assert properties.headers["x-delivery-count"] == 1
    channel.basic_ack(method.delivery_tag)
    connection.close()


def test_an_unroutable_mandatory_message_is_returned(rabbitmq_server):
    connection, channel = channel_of(rabbitmq_server)
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("", f"missing.{uuid.uuid4().hex}", b"x", PERSISTENT, mandatory=True)
    connection.close()


def test_a_wait_queue_dead_letters_to_the_work_queue_after_its_ttl(rabbitmq_server):
    connection, channel = channel_of(rabbitmq_server)
    queue = f"smoke.{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    wait = {
        **QUORUM,
        "x-message-ttl": 500,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    channel.queue_declare(f"{queue}.wait", durable=True, arguments=wait)
    sent = time.monotonic()
    channel.basic_publish("", f"{queue}.wait", b"later", PERSISTENT, mandatory=True)
    _, properties, body = take(channel, queue)
    assert body == b"later"
    assert time.monotonic() - sent >= 0.45
    assert properties.headers["x-first-death-reason"] == "expired"
    connection.close()


def test_a_confirmed_message_survives_a_clean_restart_and_a_kill(rabbitmq_server):
    # A quorum queue created seconds before a SIGKILL can come back empty and without
    # a leader on 3.10 (its Ra registration was not on disk yet): the queue is made
    # and the node restarted cleanly before the kill, as a long-lived queue would be.
    if not rabbitmq_server.controllable:
        service_unsupported("cannot restart or kill the broker given by KEW_TEST_RABBITMQ_URL")
    queue = f"smoke.{uuid.uuid4().hex[:8]}"
    connection, channel = channel_of(rabbitmq_server)
    channel.queue_declare(queue, durable=True, arguments=QUORUM)
    channel.basic_publish("", queue, b"one", PERSISTENT, mandatory=True)
    connection.close()
    rabbitmq_server.restart()
    connection, channel = channel_of(rabbitmq_server)
    channel.basic_publish("", queue, b"two", PERSISTENT, mandatory=True)
    connection.close()
    rabbitmq_server.kill()
    assert not rabbitmq_server.is_running()
    rabbitmq_server.start()
    connection, channel = channel_of(rabbitmq_server)
    assert [take(channel, queue, 30)[2], take(channel, queue)[2]] == [b"one", b"two"]
    connection.close()


def test_a_node_of_its_own(rabbitmq_server):
    if rabbitmq_server.mode != "local":
        service_unsupported("a node name and a directory of its own (only local nodes have them)")
    assert rabbitmq_server.nodename.startswith("kew-")
    assert not rabbitmq_server.nodename.startswith("rabbit@")
    assert str(rabbitmq_server.log_path).startswith(str(rabbitmq_server.node.directory))
    assert rabbitmq_server.port != 5672
    assert "kew" in rabbitmq_server.ctl("list_users")
