"""An in-process provider for tests and examples. Nothing survives the process."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kew.errors import ConfigurationError
from kew.providers.base import (
    Capability,
    Delivery,
    DeliveryOptions,
    Outgoing,
    Producer,
    Provider,
    Receiver,
    subscription_queue,
)


@dataclass
class _Stored:
    payload: bytes
    message_id: str | None
    properties: Mapping[str, str]
    ready_at: float
    redelivered: bool = False


@dataclass
class _Queue:
    heap: list[tuple[float, int, _Stored]] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)


class MemoryProvider(Provider):
    """Queues in a dict, guarded by one condition variable; thread-safe.

    Honours scheduled delivery, acks, redelivery of deliveries left
    unacked when their receiver closes, and duplicate message ids (a
    message whose id the queue has seen is dropped, as a broker's
    duplicate detection would), and topics: a publish puts a copy in each
    subscription's queue. State lives on the instance; ``clear()``
    empties it. Pass ``capabilities`` to imitate a less able provider.
    """

    capabilities = frozenset(Capability) - {Capability.PERSISTENCE, Capability.DEAD_LETTER_ADDRESS}

    def __init__(self, *, capabilities: frozenset[Capability] | None = None):
        if capabilities is not None:
            self.capabilities = frozenset(capabilities)
        self._queues: dict[str, _Queue] = {}
        self._subscriptions: dict[str, set[str]] = {}  # topic -> subscription queues
        self._cond = threading.Condition()
        self._sequence = itertools.count()

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryProvider:
        """Return a new, empty provider for ``memory://`` (each call its own queues)."""
        if options:
            raise ConfigurationError(f"memory:// takes no options, got {', '.join(options)}")
        return cls()

    def producer(self) -> Producer:
        return MemoryProducer(self)

    def receiver(self, queue: str, *, prefetch: int = 1) -> Receiver:
        return MemoryReceiver(self, queue)

    def browse(self, queue: str, *, limit: int = 100) -> Iterator[Delivery]:
        with self._cond:
            waiting = sorted(self._queue(queue).heap)[:limit]
        for _, _, stored in waiting:
            yield MemoryDelivery(self, queue, stored, receiver=None)

    def subscribe(self, topic: str, name: str) -> str:
        queue = subscription_queue(topic, name)
        with self._cond:
            self._subscriptions.setdefault(topic, set()).add(queue)
            self._queue(queue)
        return queue

    def pending(self, queue: str) -> int:
        """Return how many messages wait in ``queue`` (scheduled ones included)."""
        with self._cond:
            return len(self._queue(queue).heap)

    def clear(self) -> None:
        """Forget every queue and message."""
        with self._cond:
            self._queues.clear()
            self._subscriptions.clear()

    def _queue(self, name: str) -> _Queue:
        if not name:
            raise ConfigurationError("a queue needs a name")
        return self._queues.setdefault(name, _Queue())

    def _put(self, queue: str, stored: _Stored) -> None:
        with self._cond:
            q = self._queue(queue)
            if stored.message_id is not None and not stored.redelivered:
                if stored.message_id in q.seen_ids:
                    return
                q.seen_ids.add(stored.message_id)
            heapq.heappush(q.heap, (stored.ready_at, next(self._sequence), stored))
            self._cond.notify_all()

    def _publish(self, topic: str, stored: _Stored) -> None:
        with self._cond:
            queues = sorted(self._subscriptions.get(topic, ()))
            for queue in queues:
                self._put(queue, _Stored(**vars(stored)))

    def _take(self, queue: str, timeout: float | None) -> _Stored | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            q = self._queue(queue)
            while True:
                now = time.time()
                if q.heap and q.heap[0][0] <= now:
                    return heapq.heappop(q.heap)[2]
                waits = [q.heap[0][0] - now] if q.heap else []
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    waits.append(remaining)
                self._cond.wait(min(waits) if waits else None)


class MemoryProducer(Producer):
    """Store payloads in the provider's queues."""

    def __init__(self, provider: MemoryProvider):
        self.provider = provider

    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        options = options or DeliveryOptions()
        self.provider.require(options)
        self.provider._put(queue, _stored(payload, options))

    def send_many(self, batch: Sequence[Outgoing]) -> None:
        for item in batch:
            if item.topic:
                self.provider.validate(item)
                self.provider._publish(item.queue, _stored(item.payload, item.options))
            else:
                self.send(item.queue, item.payload, item.options)


def _stored(payload: bytes, options: DeliveryOptions) -> _Stored:
    ready_at = options.deliver_at.timestamp() if options.deliver_at else 0.0
    return _Stored(bytes(payload), options.message_id, dict(options.properties), ready_at)


class MemoryReceiver(Receiver):
    """Take deliveries from one queue; unacked ones go back on ``close``."""

    def __init__(self, provider: MemoryProvider, queue: str):
        self.provider = provider
        self.queue = queue
        self._unacked: dict[int, _Stored] = {}
        self._closed = False

    def receive(self, timeout: float | None = None) -> Delivery | None:
        if self._closed:
            raise ConfigurationError("receive() on a closed receiver")
        stored = self.provider._take(self.queue, timeout)
        if stored is None:
            return None
        self._unacked[id(stored)] = stored
        return MemoryDelivery(self.provider, self.queue, stored, receiver=self)

    def receive_ready(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` messages that are due now; never waits."""
        taken: list[Delivery] = []
        while len(taken) < limit:
            delivery = self.receive(0)
            if delivery is None:
                break
            taken.append(delivery)
        return taken

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stored in self._unacked.values():
            stored.redelivered = True
            stored.ready_at = 0.0
            self.provider._put(self.queue, stored)
        self._unacked.clear()


class MemoryDelivery(Delivery):
    """A message taken from a memory queue."""

    def __init__(self, provider, queue: str, stored: _Stored, *, receiver: MemoryReceiver | None):
        self.queue = queue
        self.payload = stored.payload
        self.message_id = stored.message_id
        self.properties = stored.properties
        self.redelivered = stored.redelivered
        self._stored = stored
        self._receiver = receiver

    def ack(self) -> None:
        if self._receiver is None:
            raise ConfigurationError("a browsed message cannot be acknowledged")
        self._receiver._unacked.pop(id(self._stored), None)
