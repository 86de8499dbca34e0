"""The service-provider interface: what a message-queue provider implements.

A ``Provider`` makes producers and receivers; payloads are bytes, metadata
travels as ``DeliveryOptions``. Callers check the declared capabilities
with ``require`` before sending anything. See ``docs/core.md``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from kew.errors import ConfigurationError, UnsupportedCapability

_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}")


class Capability(Enum):
    """Something a provider may or may not be able to do."""

    SCHEDULED_DELIVERY = "scheduled delivery (deliver_at)"
    MESSAGE_ID = "message ids"
    DEDUPLICATION = "dropping a message whose id was seen before"
    PROPERTIES = "message properties"
    PERSISTENCE = "messages that survive a restart of the provider"
    BROWSING = "browsing a queue without taking its messages"
    DEAD_LETTER_ADDRESS = "a dead-letter address for messages the provider stops redelivering"
    TOPICS = "topics whose durable subscriptions each keep a copy of what is published"
    QUEUE_DEPTH = "counting the messages waiting in a queue (pending)"


@dataclass(frozen=True)
class DeliveryOptions:
    """How to deliver one payload. Messages are durable unless asked otherwise."""

    durable: bool = True
    deliver_at: datetime | None = None
    message_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)

    def needs(self) -> set[Capability]:
        """Return the capabilities these options ask for."""
        wanted = set()
        if self.deliver_at is not None:
            wanted.add(Capability.SCHEDULED_DELIVERY)
        if self.message_id is not None:
            wanted.add(Capability.MESSAGE_ID)
        if self.properties:
            wanted.add(Capability.PROPERTIES)
        return wanted


def validate_properties(properties: Mapping[str, str]) -> None:
    """Raise ConfigurationError unless every property name and value is acceptable."""
    for name, value in properties.items():
        if not isinstance(name, str) or not _PROPERTY_NAME.fullmatch(name):
            raise ConfigurationError(
                f"bad property name {name!r}: use letters, digits, '_', '.', '-' "
                "(starting with a letter or '_', at most 128 characters)"
            )
        if not isinstance(value, str):
            kind = type(value).__name__
            raise ConfigurationError(f"property {name!r} must be a string, not {kind}")


SUBSCRIPTION_SEPARATOR = "::"


def subscription_queue(topic: str, name: str) -> str:
    """Return the queue that subscription ``name`` of ``topic`` is consumed from."""
    if not topic or not name or SUBSCRIPTION_SEPARATOR in topic + name:
        raise ConfigurationError(
            f"a topic and a subscription need names without '::', got {topic!r} and {name!r}"
        )
    return f"{topic}{SUBSCRIPTION_SEPARATOR}{name}"


@dataclass(frozen=True)
class Outgoing:
    """One payload to send to one queue, or with ``topic`` set, to every subscription of a topic."""

    queue: str
    payload: bytes
    options: DeliveryOptions = field(default_factory=DeliveryOptions)
    topic: bool = False  # ``queue`` names a topic


@dataclass(frozen=True)
class Prepared:
    """One ``Outgoing`` checked by ``Provider.prepare``; providers may attach its encoding."""

    outgoing: Outgoing


class Delivery(ABC):
    """A delivered message. Acknowledge it once it has been handled.

    An unacknowledged delivery comes back (``redelivered`` True) after its
    receiver closes or its process dies.
    """

    queue: str
    payload: bytes
    message_id: str | None
    properties: Mapping[str, str]
    redelivered: bool

    #: Seconds the provider keeps this delivery from other receivers unless it is
    #: renewed; None: for as long as the receiver's connection lives (a broker).
    lease: float | None = None

    @abstractmethod
    def ack(self) -> None:
        """Acknowledge: the provider forgets the message. Call once."""

    def renew(self) -> bool:
        """Extend the lease by ``lease`` from now; return False if the delivery is no longer held.

        Called by a heartbeat thread while the handler runs, so it must be
        thread-safe. The default, for providers that hold a delivery while
        the connection lives, does nothing.
        """
        return True


class Producer(ABC):
    """Sends payloads. Not thread-safe: use one producer per thread."""

    @abstractmethod
    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        """Send one payload; return once the provider has stored it (or raise)."""

    def send_many(self, batch: Sequence[Outgoing]) -> None:
        """Send a batch; return once the provider has stored all of it (or raise).

        Providers override this to pipeline the batch and confirm it once.
        A failure raises ``SendError`` with ``index`` set to the first
        payload that may not have been stored; those before it were.
        """
        for item in batch:
            if item.topic:
                raise UnsupportedCapability(f"{type(self).__name__} cannot publish to topics")
            self.send(item.queue, item.payload, item.options)

    def publish(self, topic: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        """Publish one payload to ``topic``; return once each of its subscriptions stored a copy.

        A topic without subscriptions drops what is published to it, so
        declare them (``Provider.subscribe``) before the first publish.
        """
        self.send_many([Outgoing(topic, payload, options or DeliveryOptions(), topic=True)])

    def send_prepared(self, batch: Sequence[Prepared]) -> None:
        """Send what ``Provider.prepare`` returned, as ``send_many`` (same errors, same return)."""
        self.send_many([item.outgoing for item in batch])

    def close(self) -> None:
        """Release the producer's resources."""

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Receiver(ABC):
    """Receives deliveries from one queue. Not thread-safe: one receiver per thread."""

    queue: str

    @abstractmethod
    def receive(self, timeout: float | None = None) -> Delivery | None:
        """Wait up to ``timeout`` seconds (None: forever) for a delivery; None if none came."""

    def receive_ready(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` deliveries this receiver holds already, without waiting.

        What a broker has pushed under ``prefetch``, or rows leased with the
        last one; each is acknowledged as if ``receive`` had returned it. The
        default holds nothing in hand: an empty list. Group commit in the
        worker takes a batch this way (``kew_django.workers.batch``).
        """
        return []

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge ``deliveries`` (this receiver's) together; by default, each in turn.

        Providers whose acks are writes override it to make one (the
        database provider: one commit). Group commit acks a batch this way.
        """
        for delivery in deliveries:
            delivery.ack()

    def close(self) -> None:
        """Stop receiving. Deliveries not yet acknowledged will be delivered again."""

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Provider(ABC):
    """A provider: makes producers and receivers for one broker or store."""

    capabilities: frozenset[Capability] = frozenset()

    @abstractmethod
    def producer(self) -> Producer:
        """Return a new producer."""

    @abstractmethod
    def receiver(self, queue: str, *, prefetch: int = 1) -> Receiver:
        """Return a receiver of ``queue`` that holds at most ``prefetch`` unacked deliveries."""

    def browse(self, queue: str, *, limit: int = 100) -> Iterator[Delivery]:
        """Yield up to ``limit`` waiting messages without taking them off the queue."""
        raise UnsupportedCapability(f"{type(self).__name__} cannot browse queues")

    def subscribe(self, topic: str, name: str) -> str:
        """Declare durable subscription ``name`` of ``topic``; return its queue.

        Idempotent. From then on every message published to ``topic`` is
        kept in that queue until a receiver of it acks it, whether or not
        one is running.
        """
        raise UnsupportedCapability(f"{type(self).__name__} has no topics")

    def pending(self, queue: str) -> int:
        """Return how many messages wait in ``queue`` (needs ``Capability.QUEUE_DEPTH``).

        Meant to be cheap enough for every web request that admits work.
        """
        raise UnsupportedCapability(f"{type(self).__name__} cannot count a queue's messages")

    def close(self) -> None:
        """Release every resource the provider holds."""

    def require(self, options: DeliveryOptions) -> None:
        """Raise UnsupportedCapability if this provider cannot honour ``options``."""
        missing = options.needs() - self.capabilities
        if missing:
            what = ", ".join(sorted(c.value for c in missing))
            raise UnsupportedCapability(f"{type(self).__name__} does not support {what}")
        validate_properties(options.properties)

    def validate(self, outgoing: Outgoing) -> None:
        """Raise ConfigurationError if this provider can never send ``outgoing``.

        The capabilities and the generic property rules, plus whatever the
        provider itself refuses (providers extend it: Artemis checks its
        reserved header names, NUL characters and the header size). Called
        before anything is stored (``kew_django``'s ``Channel.send``), so
        that a message accepted is one the provider will take.
        """
        if not outgoing.queue:
            raise ConfigurationError("a queue needs a name")
        if outgoing.topic and Capability.TOPICS not in self.capabilities:
            raise UnsupportedCapability(f"{type(self).__name__} does not support topics")
        self.require(outgoing.options)

    def prepare(self, outgoing: Outgoing) -> Prepared:
        """Check ``outgoing`` as ``validate`` does and return it ready for ``send_prepared``.

        No I/O and no producer is involved, so it may run on any thread while
        a producer sends: the relay prepares its next batch while the one
        before it waits for the broker's confirmation. Providers override it
        to encode the message once, here, rather than in the send.
        """
        self.validate(outgoing)
        return Prepared(outgoing)

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
