"""Fixtures of the periodic job tests: a clock to move by hand, a queue, the ticks it got."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from kew_django.outbox import Channel
from kew_django.periodic_jobs.registry import PeriodicSpec
from kew_django.periodic_jobs.ticker import Ticker
from tests.kew_django.conftest import written


@dataclass
class Hands:
    """The injected clock: ``now`` is what the ticker reads."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Hands:
    """A clock at 2026-06-01 12:00:00.5 UTC, in the database's past (ticks there are due)."""
    return Hands(datetime(2026, 6, 1, 12, 0, 0, 500000, tzinfo=UTC))


@pytest.fixture
def channel() -> Channel[dict]:
    """A channel of a queue no other test uses."""
    return Channel(f"test.periodic.{uuid.uuid4().hex[:10]}")


def tick_job(channel: Channel[dict], **options) -> PeriodicSpec:
    """A job that sends ``{"tick": <iso time>}`` to ``channel``."""
    options.setdefault("every", "1m")
    return PeriodicSpec(
        f"job.{channel.queue}",
        channel=channel,
        build=lambda tick: {"tick": tick.isoformat()},
        **options,
    )


def ticker(clock: Hands, *specs: PeriodicSpec, grace: float = 10.0) -> Ticker:
    return Ticker(list(specs), now=clock, grace=timedelta(seconds=grace))


def fired(channel: Channel[dict]) -> list[str]:
    """The ticks written to ``channel``'s queue, in order."""
    return [channel.codec.decode(row.payload)["tick"] for row in written(channel.queue)]
