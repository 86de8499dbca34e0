"""A queue's backlog: pending outbox rows plus what waits at the provider, where it can say.

What ``Channel.backlog`` returns; admission control (docs/backpressure.md)
compares it with a bound before accepting more work.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import router

from kew.providers.base import Capability, Provider


@dataclass(frozen=True)
class Backlog:
    """Messages for ``queue`` not yet handled: in the outbox, and at the provider."""

    queue: str
    outbox: int  # pending outbox rows (not yet relayed)
    queued: int | None  # waiting at the provider; None: the provider cannot count them

    @property
    def total(self) -> int:
        """Return every message known to wait (the provider's part counts 0 when unknown)."""
        return self.outbox + (self.queued or 0)


def pending_rows(queue: str, using: str | None = None) -> int:
    """Return how many outbox rows for ``queue`` wait for the relay (an index-only count)."""
    from kew_django.models import OutboxMessage  # channels are declared before models load

    db = using or router.db_for_read(OutboxMessage)
    pending = OutboxMessage.objects.using(db).filter(
        queue=queue, status=OutboxMessage.Status.PENDING
    )
    return pending.count()


def queue_depth(provider: Provider, queue: str) -> int | None:
    """Return how many messages wait in ``queue`` at ``provider``; None if it cannot say.

    A provider that cannot be reached raises (``ConnectionLost``): the
    caller decides whether an unknown backlog admits work.
    """
    if Capability.QUEUE_DEPTH not in provider.capabilities:
        return None
    return provider.pending(queue)


def backlog(queue: str, provider: Provider, *, using: str | None = None) -> Backlog:
    """Return the backlog of ``queue``: two counts, no locks taken."""
    return Backlog(queue, pending_rows(queue, using), queue_depth(provider, queue))
