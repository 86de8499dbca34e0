"""Helpers for tests that talk to a provider through the SPI."""

from __future__ import annotations

import time

from kew.providers.base import Delivery, Provider

WAIT = 10.0  # seconds a test waits for a message that must come


def receive_all(
    provider: Provider, queue: str, count: int, *, timeout: float = WAIT
) -> list[Delivery]:
    """Receive and ack ``count`` deliveries, failing if they do not all come in time."""
    got = []
    deadline = time.monotonic() + timeout
    with provider.receiver(queue) as consumer:
        while len(got) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"only {len(got)} of {count} messages arrived"
            delivery = consumer.receive(remaining)
            if delivery is not None:
                delivery.ack()
                got.append(delivery)
    return got


def assert_empty(provider: Provider, queue: str, *, wait: float = 0.5) -> None:
    """Fail if a message arrives on ``queue`` within ``wait`` seconds."""
    with provider.receiver(queue) as consumer:
        extra = consumer.receive(wait)
        assert extra is None, f"unexpected message {extra.payload[:80]!r}"
