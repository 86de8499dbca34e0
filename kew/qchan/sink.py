"""Queue-backed channel sinks: pull deliveries, decode them, hand them on, ack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from typing import Generic, TypeVar

from kew.channels import ChannelSink, DataSink, MessageSink
from kew.codecs import Codec, JsonCodec
from kew.errors import DecodeError
from kew.message import Message
from kew.providers.base import DELIVERY_COUNT, Delivery, Provider, Receiver

T = TypeVar("T")
log = logging.getLogger(__name__)

DecodeErrorHandler = Callable[[Delivery, DecodeError], None]


class AckMode(Enum):
    """When a sink acknowledges a delivery."""

    CONSUME_THEN_ACK = "consume-then-ack"  # at least once: a crash redelivers
    ACK_THEN_CONSUME = "ack-then-consume"  # at most once: a crash loses it


def message_from(delivery: Delivery, data: T) -> Message[T]:
    """Build the Message a sink sees from a delivery and its decoded data."""
    properties = {k: v for k, v in delivery.properties.items() if not k.startswith("kew-")}
    try:
        count = max(1, int(delivery.properties.get(DELIVERY_COUNT, "1")))
    except ValueError:
        count = 1
    return Message(
        data, delivery_count=count, message_id=delivery.message_id, properties=properties
    )


def log_decode_error(delivery: Delivery, error: DecodeError) -> None:
    """Log an undecodable payload with its raw bytes; the delivery is then acked."""
    log.error(
        "undecodable message %s on %s dropped: %s; raw payload: %r",
        delivery.message_id,
        delivery.queue,
        error,
        error.raw[:1000],
    )


class QueueSink(Generic[T]):
    """Consume one queue, handing each decoded message to ``sink``.

    ``sink`` is a MessageSink, a ChannelSink, or a callable taking the data.
    Handlers run on the thread that calls ``poll``/``run``, never on a
    provider's I/O thread.

    With CONSUME_THEN_ACK (the default) the delivery is acked after the
    sink returns; if the sink raises, the error is logged, the delivery is
    left unacked and the consumer is reopened, so the provider delivers it
    again. With ACK_THEN_CONSUME it is acked first and an error loses it.
    An undecodable payload goes to ``on_decode_error`` and is then acked.
    """

    def __init__(
        self,
        provider: Provider,
        queue: str,
        sink: MessageSink[T] | ChannelSink[T] | Callable[[T], object],
        *,
        codec: Codec[T] | None = None,
        ack_mode: AckMode = AckMode.CONSUME_THEN_ACK,
        prefetch: int = 1,
        on_decode_error: DecodeErrorHandler = log_decode_error,
    ):
        self.provider = provider
        self.queue = queue
        self.sink = sink if isinstance(sink, MessageSink) else DataSink(sink)
        self.codec = codec or JsonCodec()
        self.ack_mode = ack_mode
        self.prefetch = prefetch
        self.on_decode_error = on_decode_error
        self._consumer: Receiver | None = None

    def poll(self, timeout: float | None = None) -> bool:
        """Handle at most one delivery, waiting up to ``timeout``; return whether one came."""
        if self._consumer is None:
            self._consumer = self.provider.receiver(self.queue, prefetch=self.prefetch)
        delivery = self._consumer.receive(timeout)
        if delivery is None:
            return False
        self.handle(delivery)
        return True

    def handle(self, delivery: Delivery) -> None:
        """Decode, consume and acknowledge one delivery according to the ack mode."""
        try:
            data = self.codec.decode(delivery.payload)
        except DecodeError as error:
            self.on_decode_error(delivery, error)
            delivery.ack()
            return
        message = message_from(delivery, data)
        if self.ack_mode is AckMode.ACK_THEN_CONSUME:
            delivery.ack()
            try:
                self.sink.consume_message(message)
            except Exception:
                log.exception("message %s on %s failed after ack", delivery.message_id, self.queue)
            return
        try:
            self.sink.consume_message(message)
        except Exception:
            log.exception(
                "message %s on %s failed; it will be redelivered", delivery.message_id, self.queue
            )
            self.close()
            return
        delivery.ack()

    def run(self, stop: threading.Event, *, poll_interval: float = 0.5) -> None:
        """Poll until ``stop`` is set; the delivery in hand is finished first."""
        try:
            while not stop.is_set():
                self.poll(poll_interval)
        finally:
            self.close()

    def close(self) -> None:
        """Close the consumer; unacked deliveries come back."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
