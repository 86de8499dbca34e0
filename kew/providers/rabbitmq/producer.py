"""Sending to RabbitMQ: persistent, mandatory publishes confirmed by the broker, a batch at once.

Every send returns after the broker confirmed each message (publisher
confirms), on the caller's thread; the batch is written first and its
confirms awaited together, up to ``confirm_timeout``. The producer
declares each work queue it sends to (durable, ``queue_type``,
``queue_arguments``) and, for its first scheduled message, the wait
ladder of ``delays``. An unroutable message raises ``SendError``; a
message the broker refused to store (a nack), a lost connection or a
missing confirm raises ``ProviderError``/``ConnectionLost`` (after one
more try on a new connection when every message has an id), and the
caller sends again. While a memory or disk alarm blocks the connection
(``connection.blocked``), a missing confirm raises ``BrokerBlocked``
instead and the connection is kept: the same batch sent again waits for
the confirms of the copies already written, so none is stored twice.
Otherwise RabbitMQ does not drop duplicates: consumers that record
message ids do. See ``docs/rabbitmq.md`` and ``docs/backpressure.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pika
import pika.frame
import pika.spec

from kew.errors import (
    BrokerBlocked,
    ConfigurationError,
    ConnectionLost,
    PartlyStored,
    SendError,
)
from kew.message import utcnow
from kew.providers.base import DeliveryOptions, Outgoing, Prepared, Producer, Provider
from kew.providers.rabbitmq import delays, topics
from kew.providers.rabbitmq.config import RabbitMQConfig
from kew.providers.rabbitmq.connection import (
    CONNECTION_ERRORS,
    FlowControl,
    close_quietly,
    declare_work_queue,
    open_connection,
    translate,
)

log = logging.getLogger(__name__)

RESERVED_PREFIX = "x-"  # RabbitMQ's own headers (x-death, x-delivery-count, ...)


@dataclass(frozen=True)
class EncodedPublish(Prepared):
    """A message checked and encoded once (``RabbitMQProvider.prepare``), ready to publish."""

    properties: pika.BasicProperties
    body: bytes


def encode(outgoing: Outgoing, config: RabbitMQConfig) -> EncodedPublish:
    """Return ``outgoing``'s AMQP properties and body; ConfigurationError if it cannot go."""
    options = outgoing.options
    if not outgoing.queue or len(outgoing.queue.encode()) > 255:
        raise ConfigurationError(f"queue name {outgoing.queue!r}: use 1 to 255 bytes")
    for name in options.properties:
        if name.startswith(RESERVED_PREFIX):
            raise ConfigurationError(
                f"property name {name!r} is reserved by RabbitMQ (x-...); choose another name"
            )
    message_id = options.message_id
    if message_id is not None and (
        not isinstance(message_id, str) or len(message_id.encode()) > 255
    ):
        raise ConfigurationError("a message id must be a string of at most 255 bytes")
    if outgoing.topic:
        topics.exchange(outgoing.queue)
        if options.deliver_at is not None:
            raise ConfigurationError("RabbitMQ cannot schedule a publish to a topic")
    elif options.deliver_at is not None:
        delays.check(outgoing.queue, delays.delay_ms(options.deliver_at, utcnow()), config)
    properties = pika.BasicProperties(
        delivery_mode=2 if options.durable else 1,
        message_id=options.message_id,
        headers=dict(options.properties) or None,
    )
    return EncodedPublish(outgoing, properties, bytes(outgoing.payload))


@dataclass(frozen=True)
class _Held:
    """A batch published on the current channel: its ids and delivery tags, its routes."""

    ids: tuple[str | None, ...]
    first: int
    last: int
    routes: list[tuple[str, str]]


def _nothing() -> None:
    """Do nothing: a callback that only wakes ``process_data_events``."""


NACK_PATIENCE = 5.0  # seconds nacked messages are sent again before PartlyStored


class _Confirms:
    """Publisher confirms of one channel: which delivery tags were acked, nacked, returned."""

    def __init__(self) -> None:
        self.published = 0  # the last delivery tag used
        self.confirmed = 0  # every tag up to this one has an ack or a nack
        self.nacked: set[int] = set()
        self.returned: list[tuple[str, str]] = []  # (exchange, routing key), in order
        self._done: set[int] = set()
        self.awaited = 0  # the tag ``reached`` is called for
        self.reached: Callable[[], None] = lambda: None

    def on_confirm(self, frame: pika.frame.Method) -> None:
        """Record a Basic.Ack or Basic.Nack (``multiple``: every tag up to it)."""
        method = frame.method
        last = method.delivery_tag
        tags = range(self.confirmed + 1, last + 1) if method.multiple else [last]
        if isinstance(method, pika.spec.Basic.Nack):
            self.nacked.update(tags)
        self._done.update(tags)  # single confirms may come out of order
        while self.confirmed + 1 in self._done:
            self.confirmed += 1
            self._done.discard(self.confirmed)
        if self.awaited and self.confirmed >= self.awaited:
            self.awaited = 0
            self.reached()

    def on_return(self, channel, method: pika.spec.Basic.Return, properties, body) -> None:
        self.returned.append((method.exchange, method.routing_key))


class RabbitMQProducer(Producer):
    """Publish on a connection and channel of its own. Not thread-safe: one per thread."""

    def __init__(self, provider: Provider, config: RabbitMQConfig):
        self.provider = provider
        self.config = config
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._confirms = _Confirms()
        self._host_index = 0
        self._was_connected = False
        self._declared: set[str] = set()  # work queues declared on this connection
        self._bound: set[str] = set()  # work queues bound to the delay ladder
        self._exchanges: set[str] = set()  # topic exchanges declared on this connection
        self._ladder = False
        self.flow = FlowControl()
        self._held: _Held | None = None  # a batch the broker blocked, awaiting its confirms
        self.closed = False
        self._ensure()  # a wrong URL or password fails here, not on the first send

    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        self.send_many([Outgoing(queue, payload, options or DeliveryOptions())])

    def send_many(self, batch: Sequence[Outgoing]) -> None:
        self.send_prepared([self.provider.prepare(item) for item in batch])

    def send_prepared(self, batch: Sequence[Prepared]) -> None:
        """Publish every message, then wait for all their confirms (``confirm_timeout``).

        A batch whose messages all have ids is sent once more, on a new
        connection, if the connection was lost (a consumer that records ids
        drops a copy stored twice); otherwise ``ConnectionLost`` is raised.
        Messages the broker nacked (a queue without a leader yet, as a quorum
        queue is for a moment after it is declared or its leader's node
        dies; a full queue) are sent again, they alone, for up to
        ``NACK_PATIENCE`` seconds; then ``PartlyStored`` names those still
        refused, the others being stored.
        """
        encoded = [self._encoded(item) for item in batch]  # refuse bad input before sending
        if not encoded:
            return
        left = list(range(len(encoded)))  # indexes in ``batch`` not yet stored
        deadline, pause = time.monotonic() + NACK_PATIENCE, 0.05
        while True:
            try:
                self._send_encoded([encoded[index] for index in left])
                return
            except PartlyStored as partly:
                left = [left[index] for index in partly.refused]
                if time.monotonic() + pause > deadline:
                    raise PartlyStored(str(partly), refused=left) from partly
            log.info("RabbitMQ refused %d message(s) for now; sending them again", len(left))
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _send_encoded(self, encoded: Sequence[EncodedPublish]) -> None:
        retry_safe = all(item.outgoing.options.message_id is not None for item in encoded)
        for round_ in (1, 2):
            try:
                self._publish(encoded)
                return
            except ConnectionLost as lost:
                if not retry_safe or round_ == 2 or isinstance(lost, BrokerBlocked | PartlyStored):
                    raise
                log.warning("%s; sending the batch again (its message ids make this safe)", lost)

    def _publish(self, encoded: Sequence[EncodedPublish]) -> None:
        queues = sorted({item.outgoing.queue for item in encoded})
        what = f"{len(encoded)} message(s) for {', '.join(map(repr, queues))}"
        ids = tuple(item.outgoing.options.message_id for item in encoded)
        held, self._held = self._held, None
        published: _Held | None = None
        try:
            if held is not None and held.ids == ids and self._open():
                published = held  # sent already, on this connection: wait for it again
            else:
                if held is not None:  # another batch now: the held one is its caller's again
                    self._reset()
                published = self._write(encoded, ids)
            self._await(published.last, what)
        except CONNECTION_ERRORS as error:
            self._reset()
            raise translate(error, f"the send of {what}") from None
        except ConnectionLost:
            blocked = self.flow.reason
            if published is None or blocked is None or not self._open():
                self._reset()
                raise
            if None in ids:  # only ids tell the same batch sent again: start afresh
                self._reset()
            else:
                # Keep the connection, whose publishes the broker takes once the alarm
                # clears, so that the same batch sent again waits for these, not copies.
                self._held = published
            raise BrokerBlocked(
                f"RabbitMQ is blocking publishers ({blocked}) and did not confirm "
                f"{what} within {self.config.confirm_timeout} s"
            ) from None
        self._check(published.first, published.routes, encoded)

    def _write(self, encoded: Sequence[EncodedPublish], ids: tuple[str | None, ...]) -> _Held:
        """Publish every message of ``encoded`` (declaring what they need); return their tags."""
        channel = self._ensure()
        routes = [self._route(channel, item) for item in encoded]
        first = self._confirms.published + 1
        for (exchange, key), item in zip(routes, encoded, strict=True):
            channel._impl.basic_publish(exchange, key, item.body, item.properties, True)
            self._confirms.published += 1
        return _Held(ids, first, self._confirms.published, routes)

    def _open(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def _encoded(self, item: Prepared) -> EncodedPublish:
        if isinstance(item, EncodedPublish):
            return item
        self.provider.require(item.outgoing.options)
        return encode(item.outgoing, self.config)

    def _route(self, channel, item: EncodedPublish) -> tuple[str, str]:
        """Return (exchange, routing key) of ``item``, declaring what it needs first."""
        queue = item.outgoing.queue
        if item.outgoing.topic:
            if queue not in self._exchanges:
                topics.declare_exchange(channel, queue)
                self._exchanges.add(queue)
            return topics.exchange(queue), ""
        if queue not in self._declared:
            declare_work_queue(channel, self.config, queue)
            self._declared.add(queue)
        deliver_at = item.outgoing.options.deliver_at
        if deliver_at is None:
            return "", queue
        if not self._ladder:
            delays.declare_ladder(channel, self.config)
            self._ladder = True
        if queue not in self._bound:
            delays.bind_queue(channel, queue, self.config)
            self._bound.add(queue)
        delay = delays.delay_ms(deliver_at, utcnow())  # after the declarations: never early
        if delay == 0:
            return "", queue
        return delays.entry_exchange(self.config), delays.routing_key(queue, delay, self.config)

    def _await(self, tag: int, what: str) -> None:
        """Process I/O until delivery tag ``tag`` is confirmed; ConnectionLost after the timeout."""
        connection = self._connection
        assert connection is not None
        deadline = time.monotonic() + self.config.confirm_timeout
        # process_data_events returns early only for a ready event: the last confirm makes one
        self._confirms.awaited = tag
        self._confirms.reached = lambda: connection.add_callback_threadsafe(_nothing)
        while self._confirms.confirmed < tag:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost(
                    f"RabbitMQ did not confirm {what} within {self.config.confirm_timeout} s"
                )
            connection.process_data_events(time_limit=min(left, 1.0))

    def _check(self, first: int, routes, encoded: Sequence[EncodedPublish]) -> None:
        """Raise for the first message of the batch that was returned or nacked."""
        returned, self._confirms.returned = self._confirms.returned, []
        # a topic without subscriptions drops what is published to it, as on every provider
        returned = [route for route in returned if not topics.is_topic_exchange(route[0])]
        nacked = sorted(tag - first for tag in self._confirms.nacked if tag >= first)
        self._confirms.nacked.clear()
        if returned:
            index = routes.index(returned[0]) if returned[0] in routes else 0
            queue = encoded[index].outgoing.queue
            self._declared.discard(queue)  # declared again by the next send
            raise SendError(
                f"RabbitMQ returned a message for queue {queue!r} as unroutable "
                "(the queue or a binding is gone)",
                queue=queue,
                index=index,
            )
        if nacked:
            # a channel can keep failing to reach a queue whose leader moved: start afresh
            self._reset()
            queue = encoded[nacked[0]].outgoing.queue
            raise PartlyStored(
                f"RabbitMQ refused to store {len(nacked)} message(s) (first for queue "
                f"{queue!r}, index {nacked[0]} of the batch): a queue is unavailable or full; "
                "send those again later",
                refused=nacked,
            )

    def _ensure(self):
        """Return an open confirming channel, reconnecting (with failover) if it was lost."""
        if self.closed:
            raise ConfigurationError("this RabbitMQ producer is closed")
        if self._channel is not None and self._channel.is_open:
            try:
                assert self._connection is not None
                self._connection.process_data_events(0)  # heartbeats; finds a dropped link
                return self._channel
            except CONNECTION_ERRORS:
                log.warning("connection to RabbitMQ lost while idle; reconnecting")
                self._reset()
        first = self._host_index + 1 if self._was_connected else 0
        rounds = self.config.reconnect_attempts if self._was_connected else 1
        connection, self._host_index = open_connection(self.config, first=first, rounds=rounds)
        self._connection = connection
        self._was_connected = True
        self.flow.watch(connection)
        self._channel = connection.channel()
        self._confirms = _Confirms()
        self._channel._impl.add_on_return_callback(self._confirms.on_return)
        self._channel._impl.confirm_delivery(self._confirms.on_confirm)
        return self._channel

    def _reset(self) -> None:
        self._held = None
        close_quietly(self._connection, blocked=self.flow.reason is not None)
        self._connection = self._channel = None
        self._declared.clear()
        self._bound.clear()
        self._exchanges.clear()
        self._ladder = False

    def close(self) -> None:
        self.closed = True
        self._reset()
