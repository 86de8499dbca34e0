"""Receiving from Artemis: an ANYCAST subscription with client-individual acks.

``receive`` returns deliveries on the caller's thread and reconnects after
a lost connection; deliveries of the old connection are then dropped (the
broker delivers them again). ``ack`` does not wait for a receipt; ``close``
does. An unacked delivery comes back ``redelivered``. See ``docs/artemis.md``.

NOTE: when a receiver's connection fails (its process killed) while it
holds a delivery, Artemis (2.40 to 2.44) now and then strands it: counted
as in delivery, held by no consumer, back only after a broker restart.
``management.stranded`` counts them.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queues
import time
import uuid
from collections.abc import Mapping

import stomp.utils

from kew.errors import ConfigurationError, ConnectionLost
from kew.providers.artemis import topics
from kew.providers.artemis.config import ArtemisConfig
from kew.providers.artemis.connection import FailoverConnection
from kew.providers.artemis.producer import DUPLICATE_ID, MESSAGE_ID, is_reserved
from kew.providers.artemis.wire import BrokerRefused, Wire, new_receipt
from kew.providers.base import Delivery, Receiver

log = logging.getLogger(__name__)

_LOST = object()  # put on the inbox when the connection drops, to wake ``receive``


def window_for(prefetch: int, config: ArtemisConfig) -> int:
    """Return the consumer-window-size (bytes) for a prefetch count."""
    if prefetch < 1:
        raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")
    if prefetch == 1:
        return 0
    return config.window if config.window is not None else prefetch * 1024


def properties_of(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the application properties among a MESSAGE frame's headers."""
    return {name: value for name, value in headers.items() if not is_reserved(name)}


class ArtemisReceiver(Receiver):
    """Receive from one queue on a connection of its own. Not thread-safe."""

    def __init__(
        self, config: ArtemisConfig, queue: str, *, prefetch: int = 1, selector: str | None = None
    ):
        if not queue:
            raise ConfigurationError("a queue needs a name")
        self.queue = queue
        self.config = config
        self.window = window_for(prefetch, config)
        self.selector = selector  # an Artemis filter expression: only matching messages come
        self._inbox: queues.Queue = queues.Queue()
        self._connection = FailoverConnection(
            config, on_message=self._arrived, on_lost=lambda: self._inbox.put(_LOST)
        )
        self._subscription = uuid.uuid4().hex
        self._generation = 0  # of the wire our subscription lives on
        try:
            self._subscribe()
        except BaseException:
            self._connection.close()
            raise

    def _arrived(self, wire: Wire, frame: stomp.utils.Frame) -> None:
        """Queue a MESSAGE frame (runs on stomp.py's I/O thread; never blocks)."""
        self._inbox.put((wire, frame))

    def _subscribe(self) -> None:
        wire = self._connection.ensure()
        receipt = new_receipt()
        target, routing = topics.destination(self.queue)  # a subscription's queue: MULTICAST
        headers = {
            "subscription-type": routing,
            "consumer-window-size": str(self.window),
            "receipt": receipt,
        }
        if self.selector:
            headers["selector"] = self.selector
        wire.subscribe(target, self._subscription, headers)
        try:
            wire.wait_receipt(
                receipt, self.config.receipt_timeout, f"the subscription to {self.queue!r}"
            )
        except BrokerRefused as refused:
            raise ConfigurationError(
                f"Artemis refused a subscription to queue {self.queue!r}: {refused}"
            ) from None
        self._generation = wire.generation

    def _current(self) -> Wire | None:
        wire = self._connection.wire
        if wire is not None and wire.usable and wire.generation == self._generation:
            return wire
        return None

    def receive(self, timeout: float | None = None) -> Delivery | None:
        """Wait up to ``timeout`` seconds for a delivery; reconnect first if the link dropped.

        During an outage this may block for the whole reconnection budget
        and then raise ``ConnectionLost``.
        """
        if self._connection.closed:
            raise ConfigurationError("receive() on a closed receiver")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._current() is None:
                self._resubscribe()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._inbox.get(timeout=remaining)
            except queues.Empty:
                return None
            if item is _LOST:
                continue
            wire, frame = item
            if wire.generation == self._generation and wire.usable:
                return ArtemisDelivery(self, wire, frame)

    def receive_ready(self, limit: int) -> list[Delivery]:
        """Return up to ``limit`` deliveries already pushed by the broker; never waits."""
        taken: list[Delivery] = []
        while len(taken) < limit and self._current() is not None:
            try:
                item = self._inbox.get_nowait()
            except queues.Empty:
                break
            if item is _LOST:
                continue
            wire, frame = item
            if wire.generation == self._generation and wire.usable:
                taken.append(ArtemisDelivery(self, wire, frame))
        return taken

    def _resubscribe(self) -> None:
        log.warning("receiver of %r lost its connection; subscribing again", self.queue)
        self._drain()
        self._subscribe()

    def _drain(self) -> None:
        with contextlib.suppress(queues.Empty):
            while True:
                self._inbox.get_nowait()

    def _ack(self, delivery: ArtemisDelivery) -> None:
        wire = self._current()
        if wire is not delivery._wire:
            log.info(
                "ack of message %s on %r dropped: it came on an earlier connection, "
                "and Artemis will deliver it again",
                delivery.message_id,
                self.queue,
            )
            return
        try:
            wire.ack(delivery._ack_id)
        except ConnectionLost:
            log.info(
                "ack of message %s on %r lost with the connection; it will come again",
                delivery.message_id,
                self.queue,
            )

    def close(self) -> None:
        """Disconnect (with a receipt); unacknowledged deliveries go back to the queue."""
        if not self._connection.closed:
            self._connection.close()
            self._drain()


class ArtemisDelivery(Delivery):
    """A MESSAGE frame from Artemis."""

    def __init__(self, receiver: ArtemisReceiver, wire: Wire, frame: stomp.utils.Frame):
        headers = frame.headers
        body = frame.body
        self.queue = receiver.queue
        self.payload = body if isinstance(body, bytes) else (body or "").encode()
        self.message_id = headers.get(MESSAGE_ID) or headers.get(DUPLICATE_ID)
        self.properties = properties_of(headers)
        self.headers = dict(headers)  # every header of the MESSAGE frame, Artemis's own too
        self.redelivered = headers.get("redelivered") == "true"
        self._receiver = receiver
        self._wire = wire
        self._ack_id = headers.get("ack") or headers.get("message-id", "")
        self._acked = False

    def ack(self) -> None:
        """Acknowledge; a second call does nothing (a second ACK would make Artemis close)."""
        if self._acked:
            return
        self._acked = True
        self._receiver._ack(self)
