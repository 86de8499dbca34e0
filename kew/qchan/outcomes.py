"""The queue engine's terms: ack modes, outcomes and their counts."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum


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
    PARKED = "parked"  # its limit was full: set aside to wait for a slot, the delivery acked


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
