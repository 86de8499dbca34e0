"""Scheduled delivery on RabbitMQ without plugins: a ladder of wait queues, one per power of two.

A message due in ``d`` milliseconds is published to the topic exchange of
the top level with the routing key ``b(n-1). ... .b1.b0.<queue>``, the
binary digits of ``d``. Level ``k`` (exchange and quorum queue
``<prefix>.<k>``) sends a message whose digit ``k`` is 1 into its wait
queue, whose message TTL is ``2**k`` ms, and one whose digit is 0 straight
on to level ``k-1``'s exchange; an expired message is dead-lettered, with
its routing key, to level ``k-1``. Below level 0 the exchange
``<prefix>.deliver`` routes it to its work queue, which is bound there by
the producer that first schedules a message for it. So a message waits
exactly ``d`` ms (plus a few ms per level it waits in), every wait queue
expires its messages in order (one TTL per queue), and everything is
durable broker state: a broker restart or a consumer crash loses nothing,
and no consumer holds a scheduled message.

Limits: the delay is counted from the send, on the producer's clock;
at most ``2**levels - 1`` ms (49 days with 32 levels); a queue whose
name has a ``*`` or ``#`` word cannot get scheduled messages; a message
passes through up to ``levels`` quorum queues (one write each), and each
level it waits in adds an ``x-death`` entry to its headers. A broker
stopped for a while delivers what fell due meanwhile when it comes back.
"""

from __future__ import annotations

import math
from datetime import datetime

from kew.errors import ConfigurationError
from kew.providers.rabbitmq.config import RabbitMQConfig

MAX_ROUTING_KEY = 255  # bytes, AMQP shortstr


def delay_ms(deliver_at: datetime, now: datetime) -> int:
    """Return how many whole milliseconds to wait (rounded up: never early)."""
    if deliver_at.tzinfo is None:
        raise ConfigurationError("deliver_at must be timezone-aware (use datetime.now(UTC))")
    return max(0, math.ceil((deliver_at - now).total_seconds() * 1000))


def check(queue: str, delay: int, config: RabbitMQConfig) -> None:
    """Raise ConfigurationError if ``queue`` cannot get a message ``delay`` ms ahead."""
    limit = 2**config.delay_levels - 1
    if delay > limit:
        raise ConfigurationError(
            f"deliver_at is {delay} ms ahead; at most {limit} ms with "
            f"delay_levels={config.delay_levels}"
        )
    if any(word in ("*", "#") for word in queue.split(".")):
        raise ConfigurationError(f"queue {queue!r} has a '*' or '#' word: it cannot be scheduled")
    if len(routing_key(queue, 0, config).encode()) > MAX_ROUTING_KEY:
        raise ConfigurationError(f"queue name {queue!r} is too long for scheduled messages")


def level_name(config: RabbitMQConfig, level: int) -> str:
    """Return the exchange (and wait queue) name of ``level``; -1 is the delivering exchange."""
    return f"{config.delay_prefix}.{level}" if level >= 0 else f"{config.delay_prefix}.deliver"


def entry_exchange(config: RabbitMQConfig) -> str:
    """Return the exchange a scheduled message is published to."""
    return level_name(config, config.delay_levels - 1)


def routing_key(queue: str, delay: int, config: RabbitMQConfig) -> str:
    """Return the routing key of a message for ``queue`` due in ``delay`` ms."""
    digits = ".".join(str((delay >> k) & 1) for k in reversed(range(config.delay_levels)))
    return f"{digits}.{queue}"


def _pattern(config: RabbitMQConfig, level: int, digit: str) -> str:
    words = ["*"] * config.delay_levels
    words[config.delay_levels - 1 - level] = digit
    return ".".join(words) + ".#"


def declare_ladder(channel, config: RabbitMQConfig) -> None:
    """Declare every level's exchange, wait queue and bindings (idempotent)."""
    channel.exchange_declare(level_name(config, -1), "topic", durable=True)
    for level in range(config.delay_levels):
        name = level_name(config, level)
        below = level_name(config, level - 1)
        channel.exchange_declare(name, "topic", durable=True)
        arguments = {
            "x-queue-type": "quorum",
            "x-message-ttl": 2**level,
            "x-dead-letter-exchange": below,
            # at-least-once: an expired message leaves only once the next level has it
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
        channel.queue_declare(name, durable=True, arguments=arguments)
        channel.queue_bind(name, name, _pattern(config, level, "1"))
        channel.exchange_bind(below, name, _pattern(config, level, "0"))


def bind_queue(channel, queue: str, config: RabbitMQConfig) -> None:
    """Bind work queue ``queue`` to the delivering exchange (idempotent)."""
    pattern = ".".join(["*"] * config.delay_levels + [queue])
    channel.queue_bind(queue, level_name(config, -1), pattern)
