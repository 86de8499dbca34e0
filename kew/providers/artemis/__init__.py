"""Apache ActiveMQ Artemis over STOMP 1.2 (through stomp.py): durable, confirmed, deduplicated.

``connect("artemis://user:password@host:61613/")`` returns an
``ArtemisProvider``; every producer and receiver has a connection of its
own. It cannot browse (Artemis's STOMP subscriptions always take
messages). See ``docs/artemis.md``.
"""

from __future__ import annotations

import threading
import weakref

from kew.errors import ConfigurationError
from kew.providers.artemis import topics
from kew.providers.artemis.config import ArtemisConfig, parse_url
from kew.providers.artemis.management import Management, stranded
from kew.providers.artemis.producer import ArtemisProducer, EncodedSend, encode, send_headers
from kew.providers.artemis.receiver import ArtemisDelivery, ArtemisReceiver
from kew.providers.base import Capability, Outgoing, Producer, Provider, Receiver

__all__ = [
    "ArtemisConfig",
    "ArtemisReceiver",
    "ArtemisDelivery",
    "ArtemisProducer",
    "ArtemisProvider",
    "Management",
    "parse_url",
    "stranded",
]


class ArtemisProvider(Provider):
    """Make producers and receivers for one Artemis broker (or a failover list).

    Made from a URL and options (``ArtemisProvider(url, heartbeat=5000)``,
    as ``connect`` does) or from an ``ArtemisConfig``. Thread-safe: any
    thread may ask for producers and receivers; each of those belongs to
    one thread. ``close`` closes every one still open.
    """

    capabilities = frozenset(
        {
            Capability.SCHEDULED_DELIVERY,
            Capability.MESSAGE_ID,
            Capability.DEDUPLICATION,
            Capability.PROPERTIES,
            Capability.PERSISTENCE,
            Capability.DEAD_LETTER_ADDRESS,  # after max-delivery-attempts redeliveries
            Capability.TOPICS,  # MULTICAST addresses with durable subscription queues
        }
    )

    def __init__(self, url: str | ArtemisConfig, **options: object):
        if isinstance(url, ArtemisConfig):
            if options:
                raise ConfigurationError("pass options in the ArtemisConfig, not beside it")
            self.config = url
        else:
            self.config = parse_url(url, **options)
        self._open: weakref.WeakSet[ArtemisProducer | ArtemisReceiver] = weakref.WeakSet()
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: object) -> ArtemisProvider:
        """Return a provider for ``url``; nothing connects until a producer or receiver is made."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"<ArtemisProvider {self.config.url}>"

    def validate(self, outgoing: Outgoing) -> None:
        """Raise ConfigurationError for what Artemis never takes (reserved names, NUL, size)."""
        super().validate(outgoing)
        send_headers(outgoing.queue, outgoing.options, max_bytes=self.config.max_header_bytes)

    def prepare(self, outgoing: Outgoing) -> EncodedSend:
        """Check ``outgoing`` as ``validate`` does and encode its SEND frame (no I/O)."""
        super().validate(outgoing)
        return encode(outgoing, self.config)

    def producer(self) -> Producer:
        """Return a producer with its own connection (opened now: bad settings fail here)."""
        return self._keep(ArtemisProducer(self, self.config))

    def receiver(self, queue: str, *, prefetch: int = 1, selector: str | None = None) -> Receiver:
        """Return a subscribed receiver; ``prefetch=1`` takes one message at a time.

        ``selector`` (Artemis only) is a filter expression on message
        properties, e.g. ``"_AMQ_ORIG_QUEUE IN ('imports')"``: other
        messages stay in the queue for other receivers.
        """
        receiver = ArtemisReceiver(self.config, queue, prefetch=prefetch, selector=selector)
        return self._keep(receiver)

    def subscribe(self, topic: str, name: str) -> str:
        """Create the durable subscription ``topic.name`` on address ``topic``; return its queue."""
        return topics.subscribe(self.config, topic, name)

    def management(self) -> Management:
        """Return a connection to the broker's management API (needs the manage permission)."""
        return Management(self.config)

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
