"""Queue-backed channel sources: send data through a provider's producer."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from kew.codecs import Codec, JsonCodec
from kew.message import Message
from kew.providers.base import Provider
from kew.providers.headers import delivery_options
from kew.qchan.producers import LazyProducer

T = TypeVar("T")


class QueueSource(Generic[T]):
    """Send data to one queue: a ChannelSource and a MessageSource.

    ``send`` and ``send_message`` return once the provider has stored the
    message (for brokers: after the broker's confirmation, if the provider
    is configured to wait for it). Metadata the provider cannot honour
    raises ``UnsupportedCapability`` before anything is sent. Safe to
    share between threads: sends are serialised on one producer.
    """

    def __init__(
        self,
        provider: Provider,
        queue: str,
        *,
        codec: Codec[T] | None = None,
        durable: bool = True,
    ):
        self.provider = provider
        self.queue = queue
        self.codec = codec or JsonCodec()
        self.durable = durable
        self._producers = LazyProducer(provider)
        self._lock = threading.Lock()

    def send(self, data: T) -> None:
        """Send ``data`` for delivery as soon as possible."""
        self.send_message(Message(data))

    def send_message(self, message: Message[T]) -> None:
        """Send ``message``, honouring its schedule, count, id and properties."""
        options = delivery_options(message, durable=self.durable)
        self.provider.require(options)
        payload = self.codec.encode(message.data)
        with self._lock:
            self._producers.get().send(self.queue, payload, options)

    def close(self) -> None:
        """Close the producer, if one was opened."""
        with self._lock:
            self._producers.drop()
