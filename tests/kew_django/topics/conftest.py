"""Fixtures of the topic tests: a provider with topics (memory, database, Artemis, RabbitMQ)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest

import kew
from kew.providers.base import Provider
from kew_django.workers.worker import DeliveryOutcome, Worker


@dataclass
class Imported:
    """The payload of the test topics."""

    n: int


@pytest.fixture(
    params=[
        "memory",
        "database",
        pytest.param("artemis", marks=pytest.mark.artemis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def provider(request, transactional_db):
    """A provider with topics, relayed to through the outbox."""
    if request.param == "memory":
        provider: Provider = kew.connect("memory://")
    elif request.param == "database":
        from kew_django.providers.database import DatabaseProvider

        provider = DatabaseProvider(lease=30.0, poll_interval=0.05)
    else:
        provider = kew.connect(request.getfixturevalue(f"{request.param}_url"))
    yield provider
    provider.close()


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"test-topic.{uuid.uuid4().hex[:12]}"


def pump(
    worker: Worker, provider: Provider, until, *, timeout: float = 30.0
) -> list[DeliveryOutcome]:
    """Feed ``worker`` the deliveries of its queue until ``until()`` holds; return the outcomes."""
    outcomes = []
    deadline = time.monotonic() + timeout
    with provider.receiver(worker.spec.queue) as receiver:
        while not until():
            assert time.monotonic() < deadline, f"gave up waiting; outcomes so far: {outcomes}"
            delivery = receiver.receive(0.2)
            if delivery is not None:
                outcomes.append(worker.handle(delivery))
    return outcomes


def collector(into: list):
    """Return a handler that appends each event it gets to ``into``."""

    def handle(event: Imported) -> None:
        into.append(event)

    return handle
