"""Fixtures of the kew_django tests: a provider (database, Artemis, RabbitMQ), queues, helpers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import pytest

import kew
from kew.errors import ConnectionLost, SendError
from kew.providers.base import Producer, Provider
from kew_django.models import OutboxMessage, QueuedMessage
from kew_django.providers import ProviderHandler
from kew_django.providers import providers as provider_handler
from kew_django.workers.registry import ConsumerRegistry
from kew_django.workers.registry import consumers as registry


@dataclass
class Job:
    """The payload type of the test queues."""

    n: int
    note: str = ""


OUTBOX_SENDS = "database://?direct=false"  # the default provider, sends through the relay


@pytest.fixture
def outbox_sends(settings, providers) -> None:
    """Make ``Channel.send`` to the default provider write an outbox row for the relay."""
    settings.KEW = {**settings.KEW, "PROVIDERS": {"default": {"URL": OUTBOX_SENDS}}}


@pytest.fixture(params=["direct", "outbox"])
def sends(request) -> str:
    """How ``Channel.send`` to the default provider writes: its queue row, or an outbox row."""
    if request.param == "outbox":
        request.getfixturevalue("outbox_sends")
    return request.param


@pytest.fixture(
    params=[
        "database",
        pytest.param("artemis", marks=pytest.mark.artemis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def provider(request, transactional_db):
    """A provider to relay to and consume from: the database provider, real Artemis, RabbitMQ.

    The database provider is the default one's table: sends to it are
    direct (the relay finds nothing). To a broker, sends go through the
    outbox (``outbox_sends``) and a test relays them.
    """
    if request.param == "database":
        from kew_django.providers.database import DatabaseProvider

        provider = DatabaseProvider(lease=30.0, poll_interval=0.05)
    else:
        request.getfixturevalue("outbox_sends")
        provider = kew.connect(request.getfixturevalue(f"{request.param}_url"))
    yield provider
    provider.close()


@pytest.fixture
def database_provider(transactional_db):
    """The database provider alone, for tests about it."""
    from kew_django.providers.database import DatabaseProvider

    provider = DatabaseProvider(lease=30.0, poll_interval=0.05)
    yield provider
    provider.close()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"test.kew_django.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consumers() -> Iterator[ConsumerRegistry]:
    """The consumer registry, empty for the test; the project's consumers come back after it."""
    kept, duplicates = list(registry), list(registry.duplicates)
    registry.clear()
    yield registry
    registry.clear()
    for spec in kept:
        registry.register(spec)
    registry.duplicates.extend(duplicates)


@pytest.fixture
def providers() -> Iterator[ProviderHandler]:
    """The provider handler, with nothing built yet, so KEW settings overrides take effect."""
    provider_handler.close_all()
    yield provider_handler
    provider_handler.close_all()


class Written(NamedTuple):
    """A message as ``Channel.send`` stored it: an outbox row or a direct send's queue row."""

    message_id: str
    payload: bytes
    headers: dict[str, str]
    due: datetime | None  # an outbox row's deliver_at, a queue row's available_at


def written(queue: str) -> list[Written]:
    """Return what was sent to ``queue`` and is not relayed or consumed yet, oldest first."""
    outbox = OutboxMessage.objects.filter(queue=queue, status=OutboxMessage.Status.PENDING)
    queued = QueuedMessage.objects.filter(queue=queue)
    rows = sorted([*outbox, *queued], key=lambda row: row.created_at)
    return [
        Written(
            row.message_id,
            bytes(row.payload),
            row.headers if isinstance(row, OutboxMessage) else row.properties,
            row.deliver_at if isinstance(row, OutboxMessage) else row.available_at,
        )
        for row in rows
    ]


class Wrapped(Provider):
    """A provider that delegates to another, with hooks to break it on purpose."""

    def __init__(self, inner: Provider):
        self.inner = inner
        self.capabilities = inner.capabilities
        self.down = False  # producer() and send_many raise ConnectionLost
        self.after_send = None  # called after a successful send_many (e.g. to crash)
        self.reject_ids: set[str] = set()  # ids the "broker" refuses (SendError)
        self.sent_ids: list[str] = []

    def producer(self) -> Producer:
        if self.down:
            raise ConnectionLost("broker down (test)")
        return WrappedProducer(self, self.inner.producer())

    def receiver(self, queue, *, prefetch=1):
        return self.inner.receiver(queue, prefetch=prefetch)

    def subscribe(self, topic, name):
        return self.inner.subscribe(topic, name)


class WrappedProducer(Producer):
    def __init__(self, owner: Wrapped, inner: Producer):
        self.owner = owner
        self.inner = inner

    def send(self, queue, payload, options=None):
        from kew.providers.base import DeliveryOptions, Outgoing

        self.send_many([Outgoing(queue, payload, options or DeliveryOptions())])

    def send_many(self, batch):
        if self.owner.down:
            raise ConnectionLost("broker down (test)")
        ids = [item.options.message_id for item in batch]
        refused = [i for i, message_id in enumerate(ids) if message_id in self.owner.reject_ids]
        stored = batch[: refused[0]] if refused else batch
        self.inner.send_many(stored)
        self.owner.sent_ids.extend(ids[: len(stored)])
        if refused:
            raise SendError("message too large (test)", queue=batch[0].queue, index=refused[0])
        if self.owner.after_send is not None:
            self.owner.after_send()

    def close(self):
        self.inner.close()
