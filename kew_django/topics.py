"""Topics for Django: ``Topic.publish`` through the outbox; ``@subscriber``: a durable subscription.

    images_imported = Topic("images.imported", payload=ImageImported)

    @subscriber(images_imported, name="thumbnails", retry="10s 1m")
    def make_thumbnail(event: ImageImported) -> None: ...

A subscription is a queue of its own (``topic::name``) consumed by the
ordinary workers, so it has its own retries, idempotency and dead letters.
The relay declares a topic's subscriptions (from the code) before it first publishes to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from django.apps import apps
from django.core import checks
from django.db import transaction

import kew.topics
from kew.providers.base import Capability, Provider
from kew.schedule import ExhaustedHandler, RetrySpec
from kew_django.conf import section
from kew_django.errors import KewImproperlyConfigured
from kew_django.outbox.asend import in_callers_transaction
from kew_django.outbox.channel import Channel
from kew_django.outbox.validation import TOPIC
from kew_django.providers import get_provider
from kew_django.workers.registry import (
    DEFAULT_RETRY,
    ConsumerRegistry,
    ConsumerSpec,
    Handler,
    consumers,
)

T = TypeVar("T")


class Topic(kew.topics.Topic[T]):
    """A topic that application code publishes ``payload``-typed events to, through the outbox.

    ``publish`` writes one outbox row in the caller's transaction, exactly
    as ``Channel.send``: the event exists if and only if the transaction
    commits; the relay then publishes it and every subscription gets a copy.
    """

    def __init__(self, name: str, *, payload: type[T] | None = None, provider: str = "default"):
        super().__init__(name, payload=payload)
        self.provider = provider
        self._outbox: Channel[T] = Channel(name, payload=payload, provider=provider)

    def publish(self, data: T, *, properties: Mapping[str, str] | None = None, using=None):
        """Write ``data`` to the outbox for every subscription; return the outbox row."""
        return self._outbox.send(data, properties=self._marked(properties), using=using)

    def publish_many(
        self, items: Iterable[T], *, properties: Mapping[str, str] | None = None, using=None
    ) -> list:
        """Write every item to the outbox in one bulk INSERT; return the rows."""
        return self._outbox.send_many(items, properties=self._marked(properties), using=using)

    async def apublish(self, data: T, *, properties: Mapping[str, str] | None = None, using=None):
        """``publish`` from async code, in the caller's transaction (``outbox.asend``)."""
        return await in_callers_transaction(self.publish, data, properties=properties, using=using)

    async def apublish_many(
        self, items: Iterable[T], *, properties: Mapping[str, str] | None = None, using=None
    ) -> list:
        """``publish_many`` from async code, in the caller's transaction."""
        return await in_callers_transaction(
            self.publish_many, list(items), properties=properties, using=using
        )

    def _marked(self, properties: Mapping[str, str] | None) -> dict[str, str]:
        return {**(properties or {}), TOPIC: self.name}


@dataclass(frozen=True, eq=False)
class SubscriberSpec(ConsumerSpec):
    """A consumer of one durable subscription: ``queue`` is ``topic::subscription``."""

    topic: str = ""
    subscription: str = ""
    provider: str = "default"  # the alias the topic is published through


def subscriber(
    topic: kew.topics.Topic[Any],
    *,
    name: str,
    retry: RetrySpec | object = DEFAULT_RETRY,
    on_exhausted: ExhaustedHandler[Any] | None = None,
    idempotent: bool = False,
    prefetch: int = 1,
    atomic: bool = True,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the consumer of ``topic``'s subscription ``name``.

    The subscription is durable: what is published while no worker runs
    waits in its queue. Otherwise as ``@consumer``: the handler gets the
    decoded data in ``transaction.atomic()`` on a worker thread, the ack
    follows its commit, and retries, ``idempotent`` and dead letters are
    this subscription's own.
    """
    if not apps.is_installed("kew_django"):
        raise KewImproperlyConfigured("@subscriber needs 'kew_django' in INSTALLED_APPS")
    if retry is DEFAULT_RETRY:
        retry = section("CONSUMERS").get("RETRY", "10s 1m 10m")
    queue = topic.subscription(name)

    def decorate(handler: Handler) -> Handler:
        spec = SubscriberSpec(
            queue,
            handler,
            payload=topic.payload,
            retry=cast(RetrySpec, retry),
            on_exhausted=on_exhausted,
            idempotent=idempotent,
            prefetch=prefetch,
            atomic=atomic,
            topic=topic.name,
            subscription=name,
            provider=getattr(topic, "provider", "default"),
        )
        handler.kew_consumer = consumers.register(spec)  # type: ignore[attr-defined]
        return handler

    return decorate


def subscriptions(registry: ConsumerRegistry = consumers) -> list[SubscriberSpec]:
    """Return the subscribers the code declares, by queue."""
    found = [spec for spec in registry if isinstance(spec, SubscriberSpec)]
    return sorted(found, key=lambda spec: spec.queue)


def declare_subscriptions(provider: Provider, registry: ConsumerRegistry = consumers) -> list[str]:
    """Declare on ``provider`` every subscription of ``registry``; return their queues.

    Idempotent. A provider without topics declares nothing (publishing to
    it fails, row by row, in the relay).
    """
    if Capability.TOPICS not in provider.capabilities:
        return []
    return [provider.subscribe(spec.topic, spec.subscription) for spec in subscriptions(registry)]


class Declarations:
    """Declare a topic's subscriptions (from ``registry``) before the first publish to it.

    Once per topic for the life of the object (a relay); thread-safe. A
    failure (a broker outage) raises, and the next call tries again. Called
    inside a transaction on ``using``, a topic counts as declared only once
    it commits: the database provider's subscriptions are rows of it.
    """

    def __init__(
        self, provider: Provider, using: str, registry: ConsumerRegistry = consumers
    ) -> None:
        self.provider = provider
        self.using = using
        self.registry = registry
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, topic: str) -> None:
        """Declare the subscriptions of ``topic`` unless that was done already."""
        if topic in self._declared:
            return
        with self._lock:
            if topic in self._declared:
                return
            if Capability.TOPICS in self.provider.capabilities:
                for spec in subscriptions(self.registry):
                    if spec.topic == topic:
                        self.provider.subscribe(spec.topic, spec.subscription)
            transaction.on_commit(partial(self._declared.add, topic), using=self.using)


def check_topics(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check that each subscriber's topic goes through a provider that has topics."""
    errors: list[checks.CheckMessage] = []
    for spec in subscriptions():
        try:
            provider = get_provider(spec.provider)
        except Exception:  # noqa: BLE001 - a provider that cannot be built is kew.E001's
            continue
        if Capability.TOPICS not in provider.capabilities:
            errors.append(
                checks.Error(
                    f"@subscriber {spec.name}: topic {spec.topic!r} goes through provider "
                    f"{spec.provider!r} ({type(provider).__name__}), which has no topics",
                    hint="Use the database, memory, Artemis or RabbitMQ provider for topics.",
                    obj=spec.handler,
                    id="kew.E030",
                )
            )
    return errors
