"""Topics on RabbitMQ: a durable fanout exchange per topic, a bound work queue per subscription.

A subscription's queue is an ordinary work queue (quorum by default,
with its dead-letter queue under ``delivery_limit``), so the delay
ladder and dead-lettering work on it as on any queue.
"""

from __future__ import annotations

from kew.errors import ConfigurationError
from kew.providers.base import subscription_queue
from kew.providers.rabbitmq.config import RabbitMQConfig
from kew.providers.rabbitmq.connection import (
    CONNECTION_ERRORS,
    close_quietly,
    declare_work_queue,
    open_connection,
    translate,
)

EXCHANGE_PREFIX = "kew.topic."


def exchange(topic: str) -> str:
    """Return the name of ``topic``'s exchange; ConfigurationError if it is too long."""
    name = f"{EXCHANGE_PREFIX}{topic}"
    if not topic or len(name.encode()) > 255:
        most = 255 - len(EXCHANGE_PREFIX)
        raise ConfigurationError(f"topic name {topic!r}: use 1 to {most} bytes")
    return name


def is_topic_exchange(name: str) -> bool:
    """Return whether ``name`` is a topic's exchange."""
    return name.startswith(EXCHANGE_PREFIX)


def declare_exchange(channel, topic: str) -> str:
    """Declare ``topic``'s durable fanout exchange; return its name."""
    name = exchange(topic)
    channel.exchange_declare(name, "fanout", durable=True)
    return name


def subscribe(config: RabbitMQConfig, topic: str, name: str) -> str:
    """Declare the exchange, the subscription's queue and its binding; return the queue."""
    queue = subscription_queue(topic, name)
    connection = None
    try:
        connection, _ = open_connection(config)  # one round: the caller backs off and retries
        channel = connection.channel()
        declared = declare_exchange(channel, topic)
        declare_work_queue(channel, config, queue)
        channel.queue_bind(queue, declared)
    except CONNECTION_ERRORS as error:
        raise translate(error, f"the declaration of subscription {queue!r}") from None
    finally:
        close_quietly(connection)
    return queue
