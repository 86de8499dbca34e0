"""Receiving from RabbitMQ: a consumer with manual acks whose connection lives on its own thread.

Each receiver has an I/O thread that owns its pika connection (pika
connections are not thread-safe) and services it all the time, so
heart-beats go on while a handler runs for an hour on the caller's
thread. Deliveries reach ``receive`` through a queue; ``ack`` is handed
to the I/O thread with ``add_callback_threadsafe``. ``basic.qos``
``prefetch`` bounds the deliveries not yet acked. After a lost
connection the I/O thread reconnects (failover across nodes) and
consumes again; deliveries of the old connection cannot be acked any
more and come back ``redelivered``. RabbitMQ's ``consumer_timeout``
(30 min by default) still closes a channel that holds one delivery
longer: raise it in ``rabbitmq.conf`` for longer handlers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue as queues
import threading
import time
from collections.abc import Mapping, Sequence

import pika
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel

from kew.errors import ConfigurationError, KewError
from kew.providers.base import Delivery, Receiver
from kew.providers.rabbitmq.config import RabbitMQConfig
from kew.providers.rabbitmq.connection import (
    CONNECTION_ERRORS,
    close_quietly,
    declare_dead_letter_queue,
    declare_work_queue,
    open_connection,
    translate,
)
from kew.providers.rabbitmq.producer import RESERVED_PREFIX

log = logging.getLogger(__name__)

DELIVERY_COUNT = "x-delivery-count"  # quorum queues: earlier deliveries of this message


def properties_of(headers: Mapping[str, object] | None) -> dict[str, str]:
    """Return the application properties among a message's AMQP headers, as text."""
    properties = {}
    for name, value in (headers or {}).items():
        if name.startswith(RESERVED_PREFIX):
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        properties[name] = text  # never raises: a foreign header must not stop the receiver
    return properties


class RabbitMQReceiver(Receiver):
    """Receive from one queue; the connection lives on an I/O thread of the receiver's own.

    Not thread-safe for its callers: one thread calls ``receive``;
    ``Delivery.ack`` may be called from any thread.
    """

    def __init__(
        self,
        config: RabbitMQConfig,
        queue: str,
        *,
        prefetch: int = 1,
        dead_letters_of: Sequence[str] = (),
    ):
        if not queue:
            raise ConfigurationError("a queue needs a name")
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")
        self.queue = queue
        # None: consume ``queue``; else the dead-letter queues of these work queues
        self.dead_letters_of = list(dead_letters_of) or None
        self.config = config
        self.prefetch = prefetch
        self._inbox: queues.Queue[RabbitMQDelivery | KewError] = queues.Queue()
        self._held_error: KewError | None = None  # met by ``receive_ready``, raised by ``receive``
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self._generation = 0  # of the connection now consuming
        self._cancelled = False  # by the broker: the I/O thread starts afresh
        self._thread = threading.Thread(target=self._run, name=f"kew-rabbitmq {queue}", daemon=True)
        self._startup_error: KewError | None = None
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:  # the first connection failed: a bad URL
            self._stop.set()
            raise self._startup_error

    def receive(self, timeout: float | None = None) -> Delivery | None:
        """Wait up to ``timeout`` seconds for a delivery.

        Raises ``ConnectionLost`` once when the I/O thread has failed to
        reconnect for its whole reconnection budget (it keeps trying).
        """
        if self._stop.is_set():
            raise ConfigurationError("receive() on a closed receiver")
        held, self._held_error = self._held_error, None
        if held is not None:
            raise held
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._inbox.get(timeout=left)
            except queues.Empty:
                return None
            if isinstance(item, KewError):
                raise item
            if item.generation == self._generation:
                return item

    def receive_ready(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` deliveries already pushed by the broker; never waits.

        An error met on the way is kept for the next ``receive`` to raise.
        """
        taken: list[Delivery] = []
        while len(taken) < limit and self._held_error is None:
            try:
                item = self._inbox.get_nowait()
            except queues.Empty:
                break
            if isinstance(item, KewError):
                self._held_error = item
            elif item.generation == self._generation:
                taken.append(item)
        return taken

    def _run(self) -> None:
        """Own the connection: consume, service I/O, reconnect; runs on the I/O thread."""
        first, rounds = 0, 1
        try:
            while not self._stop.is_set():
                try:
                    connection, index = open_connection(self.config, first=first, rounds=rounds)
                    if self._stop.is_set():  # closed while connecting: take nothing
                        close_quietly(connection)
                        return
                    self._consume(connection)
                except KewError as error:
                    if not self._ready.is_set():
                        self._startup_error = error  # raised by the constructor
                        return
                    self._inbox.put(error)
                    first, rounds = first + 1, max(1, self.config.reconnect_attempts)
                    continue
                self._ready.set()
                self._serve(connection)
                if not self._stop.is_set():
                    log.warning("receiver of %r: consuming again on a new connection", self.queue)
                first, rounds = index + 1, max(1, self.config.reconnect_attempts)
        finally:
            self._ready.set()

    def _consume(self, connection: pika.BlockingConnection) -> None:
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self.prefetch)
            self._generation += 1
            sources = self._declare(channel)
            for source, original in sources:
                callback = functools.partial(self._arrived, self._generation, source, original)
                channel.basic_consume(source, callback, auto_ack=False)
            self._cancelled = False
            channel.add_on_cancel_callback(self._on_cancel)
        except CONNECTION_ERRORS as error:
            close_quietly(connection)
            raise translate(error, f"the subscription to {self.queue!r}") from None
        self._connection = connection

    def _declare(self, channel) -> list[tuple[str, str | None]]:
        """Declare what this receiver consumes; return (queue, work queue of a dead letter)."""
        if self.dead_letters_of is None:
            declare_work_queue(channel, self.config, self.queue)
            return [(self.queue, None)]
        return [
            (declare_dead_letter_queue(channel, self.config, queue), queue)
            for queue in self.dead_letters_of
        ]

    def _arrived(self, generation: int, source: str, original: str | None, channel, method, *rest):
        delivery = RabbitMQDelivery(self, generation, channel, method, *rest, queue=source)
        delivery.original_queue = original
        self._inbox.put(delivery)

    def _on_cancel(self, method) -> None:
        """The broker cancelled the consumer (its queue was deleted): consume afresh."""
        log.warning("RabbitMQ cancelled the consumer of %r; consuming again", self.queue)
        self._cancelled = True

    def _serve(self, connection: pika.BlockingConnection) -> None:
        """Process the connection's I/O until it drops or the receiver closes."""
        try:
            while not self._stop.is_set() and not self._cancelled:
                connection.process_data_events(time_limit=1.0)
            connection.process_data_events(0)  # the acks handed over before close()
        except CONNECTION_ERRORS as error:
            log.info("receiver of %r: %s", self.queue, error)
        except Exception:  # noqa: BLE001 - e.g. the broker cancelled the consumer: start afresh
            log.exception("receiver of %r failed; consuming again", self.queue)
        self._connection = None
        close_quietly(connection)  # unacked deliveries go back to the queue

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Acknowledge ``deliveries`` with one hand-over to the I/O thread (one wake, not one each).

        As ``ack`` each: from any thread, a delivery already acked is
        skipped, and one of an earlier connection is dropped (it comes again).
        """
        fresh = [d for d in deliveries if isinstance(d, RabbitMQDelivery) and not d._acked]
        for delivery in fresh:
            delivery._acked = True
        self._hand_acks(fresh)

    def _ack(self, delivery: RabbitMQDelivery) -> None:
        self._hand_acks([delivery])

    def _hand_acks(self, deliveries: list[RabbitMQDelivery]) -> None:
        """Hand the acks of ``deliveries`` to the I/O thread, in one callback."""
        connection = self._connection
        current = [d for d in deliveries if d.generation == self._generation]
        for delivery in deliveries:
            if connection is None or delivery.generation != self._generation:
                log.info(
                    "ack of message %s on %r dropped: its connection is gone, and RabbitMQ "
                    "will deliver it again",
                    delivery.message_id,
                    self.queue,
                )
        if connection is None or not current:
            return
        tags = [(delivery.channel, delivery.tag) for delivery in current]
        try:
            connection.add_callback_threadsafe(functools.partial(self._ack_now, tags))
        except CONNECTION_ERRORS:
            for delivery in current:
                log.info("ack of message %s lost with the connection", delivery.message_id)

    @staticmethod
    def _ack_now(tags: list[tuple[BlockingChannel, int]]) -> None:
        """Acknowledge on the I/O thread (a closed channel means the message comes again)."""
        for channel, tag in tags:
            with contextlib.suppress(*CONNECTION_ERRORS):
                channel.basic_ack(tag)

    def close(self) -> None:
        """Close the connection; deliveries not yet acknowledged go back to the queue."""
        if self._stop.is_set():
            return
        self._stop.set()
        connection = self._connection
        if connection is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.add_callback_threadsafe(lambda: None)  # wake the I/O thread
        if threading.current_thread() is not self._thread:
            self._thread.join(self.config.connect_timeout + 5)
        with contextlib.suppress(queues.Empty):
            while True:
                self._inbox.get_nowait()


class RabbitMQDelivery(Delivery):
    """A message delivered by RabbitMQ; ``delivery_count`` counts deliveries, this one included.

    ``delivery_count`` comes from the quorum queue's ``x-delivery-count``
    (deliveries that ended without an ack: crashes, closed channels); Kew's
    own attempt count is the ``kew-delivery-count`` property of the retry.
    """

    def __init__(
        self,
        receiver: RabbitMQReceiver,
        generation: int,
        channel,
        method: pika.spec.Basic.Deliver,
        properties: pika.spec.BasicProperties,
        body: bytes,
        *,
        queue: str,
    ):
        headers = properties.headers or {}
        self.queue = queue
        self.payload = bytes(body)
        self.message_id = properties.message_id
        self.properties = properties_of(headers)
        self.headers = dict(headers)  # RabbitMQ's own (x-death, x-delivery-count) too
        self.original_queue: str | None = None  # the work queue of a dead letter
        earlier = headers.get(DELIVERY_COUNT)
        self.delivery_count = int(earlier) + 1 if isinstance(earlier, int) else 1
        self.redelivered = bool(method.redelivered) or self.delivery_count > 1
        self.generation = generation
        self.channel = channel
        self.tag = method.delivery_tag
        self._receiver = receiver
        self._acked = False

    def ack(self) -> None:
        """Acknowledge (from any thread); a second call does nothing."""
        if self._acked:
            return
        self._acked = True
        self._receiver._ack(self)
