"""Sending to Artemis: durable, scheduled, deduplicated SEND frames confirmed by a receipt.

Every send returns after the broker's receipt, on the caller's thread.
A refused message raises ``SendError``; a lost connection or a missing
receipt raises ``ConnectionLost``, after one more try when every message
of the batch has an id. A receipt missing while the broker's heart-beats
still arrive raises ``BrokerBlocked`` at once (the broker holds producers
back; the caller pauses and sends again, duplicates dropped by id).
See ``docs/artemis.md`` (how messages are sent) and ``docs/backpressure.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kew.errors import BrokerBlocked, ConfigurationError, ConnectionLost, ProviderError, SendError
from kew.providers.artemis import topics
from kew.providers.artemis.config import ArtemisConfig
from kew.providers.artemis.connection import FailoverConnection
from kew.providers.artemis.wire import BrokerRefused, Wire, encode_send, new_receipt
from kew.providers.base import DeliveryOptions, Outgoing, Prepared, Producer, Provider

log = logging.getLogger(__name__)

MESSAGE_ID = "kew-message-id"  # a readable copy of the message id
DUPLICATE_ID = "_AMQ_DUPL_ID"  # Artemis's duplicate-detection id
SCHEDULED_TIME = "AMQ_SCHEDULED_TIME"  # epoch milliseconds

# Headers that STOMP or Artemis interpret, or that Artemis adds to a MESSAGE:
# a property with one of these names would change the delivery, so it is refused.
RESERVED_HEADERS = frozenset(
    {
        "ack",
        "content-length",
        "content-type",
        "correlation-id",
        "destination",
        "destination-type",
        "expires",
        "id",
        "ingress-timestamp",
        "message",
        "message-id",
        "persistent",
        "priority",
        "receipt",
        "receipt-id",
        "redelivered",
        "reply-to",
        "subscription",
        "subscription-type",
        "timestamp",
        "transaction",
        "type",
        "validated-user",
        "JMSXGroupID",
        "JMSXGroupSeq",
        MESSAGE_ID,
    }
)
RESERVED_PREFIXES = ("_AMQ", "__AMQ", "AMQ_", "_HQ", "JMS")

# The marker after each batch: non-persistent, to an address without queues.
MARKER_HEADERS = {"destination-type": "MULTICAST", "persistent": "false", "content-length": "0"}


def is_reserved(name: str) -> bool:
    """Return whether a header name belongs to STOMP, Artemis or Kew's provider."""
    return name in RESERVED_HEADERS or name.startswith(RESERVED_PREFIXES)


def send_headers(queue: str, options: DeliveryOptions, *, max_bytes: int) -> dict[str, str]:
    """Return the SEND headers for ``options``; raise ConfigurationError for what cannot go."""
    if not queue:
        raise ConfigurationError("a queue needs a name")
    headers = {
        "destination-type": "ANYCAST",
        "persistent": "true" if options.durable else "false",
    }
    if options.deliver_at is not None:
        if options.deliver_at.tzinfo is None:
            raise ConfigurationError("deliver_at must be timezone-aware (use datetime.now(UTC))")
        headers[SCHEDULED_TIME] = str(int(options.deliver_at.timestamp() * 1000))
    if options.message_id is not None:
        headers[DUPLICATE_ID] = headers[MESSAGE_ID] = _text("message id", options.message_id)
    for name, value in options.properties.items():
        if is_reserved(name):
            raise ConfigurationError(
                f"property name {name!r} is reserved by STOMP/Artemis; choose another name"
            )
        headers[name] = _text(f"property {name!r}", value)
    size = sum(len(k) + len(v.encode()) + 2 for k, v in headers.items()) + len(queue.encode())
    if size > max_bytes:
        raise ConfigurationError(
            f"the headers of a message for {queue!r} take {size} bytes, more than "
            f"max_header_bytes={max_bytes}: put large data in the payload, not in properties"
        )
    return headers


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise ConfigurationError(f"{what} contains a NUL character, which STOMP cannot carry")
    return value


Frame = tuple[str, bytes, dict[str, str]]  # destination, body, SEND headers


@dataclass(frozen=True)
class EncodedSend(Prepared):
    """A message checked and encoded once (``ArtemisProvider.prepare``), ready to write."""

    frame: Frame
    data: bytes  # the SEND frame as it goes on the wire


def encode(outgoing: Outgoing, config: ArtemisConfig) -> EncodedSend:
    """Return ``outgoing`` as a SEND frame and its bytes; ConfigurationError if it cannot go."""
    headers = send_headers(outgoing.queue, outgoing.options, max_bytes=config.max_header_bytes)
    payload = bytes(outgoing.payload)
    headers["content-length"] = str(len(payload))  # a bytes message, even when empty
    if outgoing.topic:
        target = outgoing.queue
        headers["destination-type"] = topics.MULTICAST
    else:
        target, headers["destination-type"] = topics.destination(outgoing.queue)
    frame = (target, payload, headers)
    return EncodedSend(outgoing, frame, encode_send(*frame))


class ArtemisProducer(Producer):
    """Send payloads on a connection of its own. Not thread-safe: one per thread."""

    def __init__(self, provider: Provider, config: ArtemisConfig):
        self.provider = provider
        self.config = config
        self._connection = FailoverConnection(config)
        self._connection.ensure()  # a wrong URL or password fails here, not on the first send

    def send(self, queue: str, payload: bytes, options: DeliveryOptions | None = None) -> None:
        self.send_many([Outgoing(queue, payload, options or DeliveryOptions())])

    def send_many(self, batch: Sequence[Outgoing]) -> None:
        self.send_prepared([self.provider.prepare(item) for item in batch])

    def send_prepared(self, batch: Sequence[Prepared]) -> None:
        """Write the encoded frames, then the receipt marker; return after its receipt."""
        encoded = [self._encoded(item) for item in batch]  # refuse bad input before sending any
        if not encoded:
            return
        retry_safe = all(item.outgoing.options.message_id is not None for item in encoded)
        frames = [item.frame for item in encoded]
        for round_ in (1, 2):
            try:
                self._transmit(self._connection.ensure(), frames, [item.data for item in encoded])
                return
            except ConnectionLost as lost:
                if not retry_safe or round_ == 2 or isinstance(lost, BrokerBlocked):
                    raise
                log.warning(
                    "connection lost while sending %d message(s) to Artemis; "
                    "sending them again (their message ids make this safe)",
                    len(frames),
                )
            except BrokerRefused as refused:
                self._locate_refusal(frames, refused, retry_safe)
                return

    def _encoded(self, item: Prepared) -> EncodedSend:
        if isinstance(item, EncodedSend):
            return item
        self.provider.require(item.outgoing.options)
        return encode(item.outgoing, self.config)

    def _transmit(
        self,
        wire: Wire,
        frames: Sequence[tuple[str, bytes, Mapping[str, str]]],
        encoded: Sequence[bytes] | None = None,
    ) -> None:
        """Write every frame, then the receipt marker, and wait for its receipt.

        The marker goes on the batch's own session, because Artemis's receipt
        waits only for that session's storage (a receipt on a transaction,
        which has a session of its own, would not). An ERROR that carries the
        marker's receipt id is the marker's own: ``ProviderError`` (a broker
        setting, not a message, is at fault, so a relay backs off and tries
        again rather than failing rows).
        """
        receipt = new_receipt()
        marker = (self.config.receipt_address, b"", {**MARKER_HEADERS, "receipt": receipt})
        try:
            with_marker = None if encoded is None else [*encoded, encode_send(*marker)]
            wire.send_many([*frames, marker], with_marker)
            queues = sorted({queue for queue, _, _ in frames})
            what = f"{len(frames)} message(s) for {', '.join(map(repr, queues))}"
            wire.wait_receipt(receipt, self.config.receipt_timeout, what)
        except BrokerRefused as refused:
            if refused.receipt_id == receipt:
                raise ProviderError(
                    f"Artemis refused the receipt marker sent to address "
                    f"{self.config.receipt_address!r}: {refused}. Let this user send to it "
                    f"(and auto-create it, or create it as a MULTICAST address), or name "
                    f"another with ?receipt_address="
                ) from None
            raise

    def _locate_refusal(
        self,
        frames: Sequence[tuple[str, bytes, Mapping[str, str]]],
        refused: BrokerRefused,
        retry_safe: bool,
    ) -> None:
        """Raise SendError for the frame the broker refused, with its index.

        An ERROR carries the receipt id of its frame only if that frame had
        a receipt, and only the marker has one (its refusal is raised by
        ``_transmit``). So for a batch, if every message has an id, it is
        sent again one frame at a time (duplicates are dropped) to find the
        refused one; if all of it is stored this time, nothing is raised.
        Without ids the index is 0.
        """
        if len(frames) == 1 or not retry_safe:
            index = 0
        else:
            first = self._first_refused(frames)
            if first is None:
                return  # stored this time: the refusal was transient
            index = first
        queue = frames[index][0]
        raise SendError(
            f"Artemis refused a message for queue {queue!r}: {refused}", queue=queue, index=index
        )

    def _first_refused(self, frames: Sequence[tuple[str, bytes, Mapping[str, str]]]) -> int | None:
        """Send ``frames`` one by one with receipts; return the index of the first refused."""
        for index, frame in enumerate(frames):
            try:
                self._transmit(self._connection.ensure(), [frame])
            except BrokerRefused:
                return index
        return None

    def close(self) -> None:
        self._connection.close()
