"""RabbitMQ over AMQP 0-9-1 (through pika): quorum queues, publisher confirms, scheduled delivery.

``connect("amqp://user:password@host:5672/")`` returns a
``RabbitMQProvider``; every producer has a connection of its own, every
receiver one on an I/O thread of its own. Scheduled delivery (and so
Kew's retry delays) uses a ladder of wait queues (``delays``). It cannot
browse, and RabbitMQ drops no duplicates: an idempotent consumer does.
See ``docs/rabbitmq.md``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from kew.errors import ConfigurationError
from kew.providers.base import Capability, Outgoing, Producer, Provider, Receiver
from kew.providers.rabbitmq import topics
from kew.providers.rabbitmq.config import RabbitMQConfig, parse_url
from kew.providers.rabbitmq.depth import QueueDepth
from kew.providers.rabbitmq.producer import EncodedPublish, RabbitMQProducer, encode
from kew.providers.rabbitmq.receiver import RabbitMQDelivery, RabbitMQReceiver

__all__ = [
    "RabbitMQConfig",
    "RabbitMQDelivery",
    "RabbitMQProducer",
    "RabbitMQProvider",
    "RabbitMQReceiver",
    "parse_url",
]


class RabbitMQProvider(Provider):
    """Make producers and receivers for one RabbitMQ node (or a failover list of a cluster's).

    Made from a URL and options (``RabbitMQProvider(url, heartbeat=10)``,
    as ``connect`` does) or from a ``RabbitMQConfig``. Thread-safe: any
    thread may ask for producers and receivers; each producer belongs to
    one thread. ``close`` closes every one still open.
    """

    capabilities = frozenset(
        {
            Capability.SCHEDULED_DELIVERY,  # the wait-queue ladder
            Capability.MESSAGE_ID,
            Capability.PROPERTIES,
            Capability.PERSISTENCE,
            Capability.TOPICS,  # a fanout exchange per topic, a work queue per subscription
            Capability.QUEUE_DEPTH,  # ready messages (a passive queue.declare)
            # and DEAD_LETTER_ADDRESS with delivery_limit (a dead-letter queue per queue)
        }
    )

    def __init__(self, url: str | RabbitMQConfig, **options: object):
        if isinstance(url, RabbitMQConfig):
            if options:
                raise ConfigurationError("pass options in the RabbitMQConfig, not beside it")
            self.config = url
        else:
            self.config = parse_url(url, **options)
        if self.config.delivery_limit is not None:
            self.capabilities = self.capabilities | {Capability.DEAD_LETTER_ADDRESS}
        self._open: weakref.WeakSet[RabbitMQProducer | RabbitMQReceiver] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._depth = QueueDepth(self.config)

    @classmethod
    def from_url(cls, url: str, **options: object) -> RabbitMQProvider:
        """Return a provider for ``url``; nothing connects until a producer or receiver is made."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<RabbitMQProvider {self.config.url}>"

    def validate(self, outgoing: Outgoing) -> None:
        """Raise ConfigurationError for what RabbitMQ never takes (x- names, long ids, delays)."""
        super().validate(outgoing)
        encode(outgoing, self.config)

    def prepare(self, outgoing: Outgoing) -> EncodedPublish:
        """Check ``outgoing`` as ``validate`` does and encode its properties (no I/O)."""
        super().validate(outgoing)
        return encode(outgoing, self.config)

    def producer(self) -> Producer:
        """Return a producer with its own connection (opened now: bad settings fail here)."""
        return self._keep(RabbitMQProducer(self, self.config))

    def receiver(self, queue: str, *, prefetch: int = 1) -> Receiver:
        """Return a consuming receiver of ``queue`` (declared if missing), ``prefetch`` unacked."""
        return self._keep(RabbitMQReceiver(self.config, queue, prefetch=prefetch))

    def subscribe(self, topic: str, name: str) -> str:
        """Declare ``topic``'s exchange and the subscription's bound queue; return the queue."""
        return topics.subscribe(self.config, topic, name)

    def dead_letter_receiver(self, queues: Sequence[str], *, prefetch: int = 1) -> Receiver:
        """Return a receiver of the dead-letter queues of ``queues`` (needs ``delivery_limit``).

        Each delivery's ``original_queue`` names the work queue it left.
        """
        if self.config.delivery_limit is None:
            raise ConfigurationError("dead-letter queues need delivery_limit= in the URL")
        if not queues:
            raise ConfigurationError("name the queues whose dead letters to receive")
        first = self.config.dead_letter_queue(queues[0])
        receiver = RabbitMQReceiver(self.config, first, prefetch=prefetch, dead_letters_of=queues)
        return self._keep(receiver)

    def pending(self, queue: str) -> int:
        """Return how many messages are ready in ``queue`` (0 if it does not exist yet).

        One passive declare on a connection the provider keeps for counting;
        unacknowledged deliveries and delayed messages are not counted.
        """
        return self._depth.count(queue)

    def _keep(self, client):
        with self._lock:
            self._open.add(client)
        return client

    def close(self) -> None:
        """Close every producer and receiver this provider made that is still open."""
        with self._lock:
            clients = list(self._open)
            self._open.clear()
        for client in clients:
            client.close()
        self._depth.close()
