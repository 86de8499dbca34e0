"""Channels: send typed data to a queue through the transactional outbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from django.db import router
from django.utils import timezone

from kew.codecs import JsonCodec
from kew.errors import ConfigurationError
from kew.providers.base import DeliveryOptions, validate_properties
from kew_django.db.notify import OUTBOX
from kew_django.db.wake import wake_on_commit
from kew_django.observability.tracing import outbox_headers
from kew_django.outbox.asend import AsyncSending
from kew_django.outbox.backlog import Backlog, backlog
from kew_django.outbox.direct import direct_provider, enqueue
from kew_django.outbox.insert import OutboxInsert
from kew_django.outbox.oncommit import grace_for, hold_for_sender, publish_on_commit
from kew_django.outbox.validation import TOPIC, validate_outgoing
from kew_django.providers import get_provider

T = TypeVar("T")


class Channel(AsyncSending[T], Generic[T]):
    """A named queue that application code sends ``payload``-typed data to.

    ``send`` writes an outbox row on the current database connection: inside
    ``transaction.atomic()`` the message exists if and only if the
    transaction commits; outside one it is committed at once (autocommit).
    The relay publishes it afterwards, woken once the transaction commits;
    with ``KEW["OUTBOX"]["PUBLISH_ON_COMMIT"]`` the sending process publishes
    it itself right after the commit, from a thread of its own, and the relay
    takes it only if it is still pending ``GRACE`` seconds later (``outbox.oncommit``).
    To a database provider in the same database (unless ``direct=false``),
    ``send`` writes the queue row itself (``QueuedMessage``) instead, just as
    transactional; no relay is involved. Either row's ``message_id`` is the
    id consumers see. ``send_now`` bypasses the outbox.
    ``asend`` and ``asend_many`` are for async code (``outbox.asend``).
    """

    def __init__(self, queue: str, *, payload: type[T] | None = None, provider: str = "default"):
        if not queue or len(queue) > 200:
            raise ConfigurationError(f"a queue name needs 1 to 200 characters, got {queue!r}")
        self.queue = queue
        self.payload = payload
        self.provider = provider
        self.codec: JsonCodec[T] = JsonCodec(payload)
        self._insert = OutboxInsert()

    def __repr__(self) -> str:
        kind = self.payload.__name__ if self.payload else "any"
        return f"Channel({self.queue!r}, payload={kind})"

    def send(
        self,
        data: T,
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ):
        """Write ``data`` to the outbox for delivery as soon as the relay publishes it."""
        return self._write([data], None, properties, using)[0]

    def send_at(
        self,
        data: T,
        when: datetime,
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ):
        """Write ``data`` to the outbox for delivery not before ``when`` (an aware datetime)."""
        if timezone.is_naive(when):
            raise ConfigurationError("send_at needs an aware datetime (django.utils.timezone.now)")
        return self._write([data], when, properties, using)[0]

    def send_after(
        self,
        data: T,
        delay: timedelta,
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ):
        """Write ``data`` to the outbox for delivery ``delay`` from now."""
        return self._write([data], timezone.now() + delay, properties, using)[0]

    def send_many(
        self,
        items: Iterable[T],
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ) -> list:
        """Write every item to the outbox in one bulk INSERT; return the rows."""
        return self._write(list(items), None, properties, using)

    def send_now(self, data: T, *, properties: Mapping[str, str] | None = None) -> str:
        """Send ``data`` straight to the provider, outside any transaction; return its id.

        Not transactional with a broker: the message goes even if the
        caller's transaction rolls back, and an outage raises here. (With the
        database provider the insert does join the current transaction.)
        Prefer ``send``.
        """
        message_id = str(uuid.uuid4())
        properties = outbox_headers(self.queue, dict(properties or {}), 1)
        options = DeliveryOptions(message_id=message_id, properties=properties)
        provider = get_provider(self.provider)
        provider.require(options)
        with provider.producer() as producer:
            producer.send(self.queue, self.codec.encode(data), options)
        return message_id

    def backlog(self, *, using: str | None = None) -> Backlog:
        """Return how many messages wait: pending outbox rows plus the provider's queue depth.

        The provider's part is None when it cannot count (Artemis over STOMP);
        an unreachable broker raises ``ConnectionLost``. Two cheap counts.
        """
        return backlog(self.queue, get_provider(self.provider), using=using)

    def _write(self, items, deliver_at, properties, using):
        from kew_django.models import OutboxMessage  # channels are declared before models load

        headers = dict(properties or {})
        validate_properties(headers)
        headers = outbox_headers(self.queue, headers, len(items))  # the trace context, if any
        validate_outgoing(  # the provider's own rules too: the relay must be able to send it
            self.provider,
            self.queue,
            headers=headers,
            content_type=self.codec.content_type,
            deliver_at=deliver_at,
        )
        if not items:
            return []
        db = using or router.db_for_write(OutboxMessage)
        # A topic's row goes through the relay, which fans it out to the subscriptions.
        direct = None if TOPIC in headers else direct_provider(self.provider, db)
        if direct is not None:
            payloads = [self.codec.encode(item) for item in items]
            content_type = self.codec.content_type
            return enqueue(direct, self.queue, payloads, headers, content_type, deliver_at)
        now = timezone.now()
        grace = grace_for(self.queue, headers, deliver_at)  # None: the relay publishes them
        held = hold_for_sender(now, grace) if grace is not None else None
        # Rows of one batch get increasing created_at so the relay keeps their order.
        rows = [
            OutboxMessage(
                queue=self.queue,
                payload=self.codec.encode(item),
                content_type=self.codec.content_type,
                headers=headers,
                deliver_at=deliver_at,
                created_at=now + timedelta(microseconds=index),
                retry_at=held,
            )
            for index, item in enumerate(items)
        ]
        if len(rows) == 1:
            self._insert.insert(rows[0], db)
        else:
            rows = OutboxMessage.objects.using(db).bulk_create(rows)
        if grace is None:
            wake_on_commit(OUTBOX, using=db)
        else:
            publish_on_commit(self.provider, rows, using=db, grace=grace)
        return rows
