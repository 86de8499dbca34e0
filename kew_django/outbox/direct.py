"""Send to a database provider's queue without the outbox: the queue row is written directly.

The queue table of a database provider is as transactional as the
outbox: when it lives in the sender's database, ``Channel.send`` writes
the queue row in the caller's transaction (``DatabaseProvider.enqueue``)
and consumers are woken after the commit. The message keeps what the
relay would have given it: a fresh id, the headers (trace context
included), the content type unless JSON, and its due time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from django.utils import timezone

from kew_django.outbox.validation import relay_options
from kew_django.providers import ProviderNotConfigured, get_provider
from kew_django.providers.database import DatabaseProvider
from kew_django.providers.database_send import NewRow


def direct_provider(alias: str, using: str) -> DatabaseProvider | None:
    """Return provider ``alias`` if sends to it skip the outbox of database ``using``."""
    try:
        provider = get_provider(alias)
    except ProviderNotConfigured:
        return None
    if isinstance(provider, DatabaseProvider) and provider.direct and provider.using == using:
        return provider
    return None


def enqueue(
    provider: DatabaseProvider,
    queue: str,
    payloads: Sequence[bytes],
    headers: Mapping[str, str],
    content_type: str,
    deliver_at: datetime | None,
) -> list:
    """Write one queue row per payload, in order; return them (``QueuedMessage``, saved)."""
    from kew_django.models import QueuedMessage  # channels are declared before models load

    now = timezone.now()
    rows = []
    for index, payload in enumerate(payloads):
        message_id = str(uuid.uuid4())
        options = relay_options(
            message_id=message_id,
            headers=headers,
            content_type=content_type,
            deliver_at=deliver_at,
            scheduled=True,
        )
        rows.append(
            NewRow(
                queue=queue,
                payload=payload,
                message_id=message_id,
                properties=dict(options.properties),
                available_at=deliver_at,
                created_at=now + timedelta(microseconds=index),
            )
        )
    ids = provider.enqueue(rows)
    saved = []
    for row, pk in zip(rows, ids, strict=True):
        message = QueuedMessage(
            id=pk, **row._replace(available_at=row.available_at or row.created_at)._asdict()
        )
        message._state.adding, message._state.db = False, provider.using
        saved.append(message)
    return saved
