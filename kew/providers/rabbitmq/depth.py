"""Counting a queue's messages: a passive ``queue.declare`` on a connection kept for it.

The answer is RabbitMQ's ``message_count``: messages ready for delivery,
not those delivered and unacknowledged, nor those still waiting in the
delay ladder.
"""

from __future__ import annotations

import threading

import pika
import pika.exceptions

from kew.errors import ConnectionLost
from kew.providers.rabbitmq.config import RabbitMQConfig
from kew.providers.rabbitmq.connection import (
    CONNECTION_ERRORS,
    close_quietly,
    open_connection,
    translate,
)

NOT_FOUND = 404


class QueueDepth:
    """Count messages in queues over one connection of its own; thread-safe (one at a time)."""

    def __init__(self, config: RabbitMQConfig):
        self.config = config
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None

    def count(self, queue: str) -> int:
        """Return how many messages are ready in ``queue`` (0 if it does not exist yet).

        Raises ``ConnectionLost`` when RabbitMQ cannot be reached.
        """
        with self._lock:
            try:
                try:
                    return self._count(queue)
                except CONNECTION_ERRORS as error:
                    if isinstance(error, pika.exceptions.ChannelClosedByBroker):
                        raise
                    # an idle connection's heart-beats go unanswered: the broker may have
                    # closed it meanwhile, so one new connection is tried before giving up
                    self._drop()
                    return self._count(queue)
            except pika.exceptions.ChannelClosedByBroker as error:
                self._channel = None
                if error.reply_code == NOT_FOUND:
                    return 0
                raise translate(error, f"counting the messages of {queue!r}") from None
            except CONNECTION_ERRORS as error:
                self._drop()
                raise translate(error, f"counting the messages of {queue!r}") from None
            except ConnectionLost:
                self._drop()
                raise

    def _count(self, queue: str) -> int:
        if self._connection is None or not self._connection.is_open:
            self._connection, _ = open_connection(self.config)
            self._channel = None
        channel = self._channel
        if channel is None or not channel.is_open:
            channel = self._channel = self._connection.channel()
        frame = channel.queue_declare(queue, passive=True)
        return int(frame.method.message_count)

    def _drop(self) -> None:
        close_quietly(self._connection)
        self._connection = self._channel = None

    def close(self) -> None:
        """Close the counting connection; the next count opens another."""
        with self._lock:
            self._drop()
