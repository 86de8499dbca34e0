"""Topics: publish once, and every durable subscription of the topic receives its own copy.

A subscription is a queue of its own (``Topic.subscription(name)``),
consumed like any queue (``QueueSink``), with its own retries and dead
letters. Providers that declare ``Capability.TOPICS`` implement them; see
``docs/topics.md``.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, TypeVar

from kew.codecs import Codec, JsonCodec
from kew.errors import ConfigurationError
from kew.message import Message
from kew.providers.base import Capability, Provider, subscription_queue
from kew.providers.headers import delivery_options
from kew.qchan.producers import LazyProducer

T = TypeVar("T")


class Topic(Generic[T]):
    """A named topic of ``payload``-typed events (a declaration; no I/O)."""

    def __init__(self, name: str, *, payload: type[T] | None = None):
        if not name or len(name) > 150 or "::" in name:
            raise ConfigurationError(f"a topic name needs 1 to 150 characters, no '::': {name!r}")
        self.name = name
        self.payload = payload
        self.codec: JsonCodec[T] = JsonCodec(payload)

    def __repr__(self) -> str:
        kind = self.payload.__name__ if self.payload else "any"
        return f"{type(self).__name__}({self.name!r}, payload={kind})"

    def subscription(self, name: str) -> str:
        """Return the queue of this topic's subscription ``name``."""
        return subscription_queue(self.name, name)


class TopicSource(Generic[T]):
    """Publish data to one topic straight through a provider (no outbox); thread-safe.

    ``publish`` returns once every subscription declared so far stored a
    copy (for brokers: after the broker's confirmation).
    """

    def __init__(self, provider: Provider, topic: Topic[T], *, codec: Codec[T] | None = None):
        if Capability.TOPICS not in provider.capabilities:
            raise ConfigurationError(f"{type(provider).__name__} has no topics")
        self.provider = provider
        self.topic = topic
        self.codec: Codec[Any] = codec or topic.codec
        self._producers = LazyProducer(provider)
        self._lock = threading.Lock()

    def subscribe(self, name: str) -> str:
        """Declare subscription ``name`` (idempotent); return its queue."""
        return self.provider.subscribe(self.topic.name, name)

    def publish(self, data: T) -> None:
        """Publish ``data`` for delivery to every subscription."""
        self.publish_message(Message(data))

    def publish_message(self, message: Message[T]) -> None:
        """Publish ``message``, honouring its schedule, id and properties."""
        options = delivery_options(message)
        self.provider.require(options)
        payload = self.codec.encode(message.data)
        with self._lock:
            self._producers.get().publish(self.topic.name, payload, options)

    def close(self) -> None:
        """Close the producer, if one was opened."""
        with self._lock:
            self._producers.drop()
