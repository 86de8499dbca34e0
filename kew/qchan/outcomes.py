"""What the queue engine reports: ack modes, delivery outcomes, counts of them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from kew.message import Message
from kew.providers.base import DELIVERY_COUNT, Delivery

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
    properties = {k: v for k, v in delivery.properties.items() if not k.startswith("kew-")}
    return Message(
        data,
        delivery_count=delivery_count(delivery),
        message_id=delivery.message_id,
        properties=properties,
    )
