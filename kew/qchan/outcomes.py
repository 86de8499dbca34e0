"""The queue engine's terms: ack modes, outcomes and their counts, retry metadata."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import Enum
from typing import TypeVar

from kew.message import Message, utcnow
from kew.providers.base import (
    CONTENT_TYPE,
    DELIVERY_COUNT,
    Delivery,
    DeliveryOptions,
    application_properties,
)
from kew.qchan.source import delivery_options

T = TypeVar("T")

# Carried by retries, so that Kew knows when the first delivery failed.
FIRST_FAILED_AT = "kew-first-failed-at"


class AckMode(Enum):
    """When the engine acknowledges a delivery."""

    CONSUME_THEN_ACK = "consume-then-ack"  # at least once: a crash delivers it again
    ACK_THEN_CONSUME = "ack-then-consume"  # at most once: a crash loses it


class DeliveryOutcome(Enum):
    """What became of one delivery."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"  # an idempotent consumer had handled this message id already
    RETRIED = "retried"  # the retry was sent, the delivery acked
    DEAD = "dead"  # Kew gave up on it: the give-up hook ran, the delivery was acked
    RELEASED = "released"  # no schedule: left unacked, for the provider to deliver again


@dataclass
class WorkerStats:
    """Counts of outcomes, shared by the threads of one queue."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[DeliveryOutcome, int] = field(
        default_factory=lambda: dict.fromkeys(DeliveryOutcome, 0)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: DeliveryOutcome) -> None:
        """Count one outcome."""
        with self.lock:
            self.counts[outcome] += 1

    def line(self, queue: str) -> str:
        """Return one progress line for ``queue``."""
        with self.lock:
            done = sum(self.counts.values())
            parts = ", ".join(f"{n} {o.value}" for o, n in self.counts.items() if n)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        return f"consume {queue}: {done} deliveries ({rate:.1f}/s){': ' if parts else ''}{parts}"


def delivery_count(delivery: Delivery) -> int:
    """Return how many times this data has been delivered, counting this delivery."""
    try:
        return max(1, int(delivery.properties.get(DELIVERY_COUNT, "1")))
    except ValueError:
        return 1


def message_from(delivery: Delivery, data: T) -> Message[T]:
    """Build the Message a handler sees from a delivery and its decoded data."""
    return Message(
        data,
        delivery_count=delivery_count(delivery),
        message_id=delivery.message_id,
        properties=application_properties(delivery.properties),
    )


def retry_options(delivery: Delivery, message: Message[T], delay: timedelta) -> DeliveryOptions:
    """Return how to send the retry of ``message`` (from ``delivery``), ``delay`` from now.

    The retry is ``message.retry_after(delay)``: a delivery time, a count one
    higher, the id ``<origin>#<count>``; it keeps the content type and when
    the first delivery failed.
    """
    options = delivery_options(message.retry_after(delay))
    properties = dict(options.properties)
    properties[FIRST_FAILED_AT] = delivery.properties.get(FIRST_FAILED_AT) or utcnow().isoformat()
    if CONTENT_TYPE in delivery.properties:
        properties[CONTENT_TYPE] = delivery.properties[CONTENT_TYPE]
    return replace(options, properties=properties)
