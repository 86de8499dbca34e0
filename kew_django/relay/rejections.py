"""Back-off between the attempts of a row the provider rejected.

A rejection (``SendError``) may be transient: a full address, a broker
that pages. Retrying at every poll would spend ``MAX_ATTEMPTS`` in a few
seconds, so a rejected row waits ``REJECTION_DELAY`` seconds, doubling
with each attempt up to the relay's ``backoff_max``, before it is claimed
again (``OutboxMessage.retry_at``). Other rows are not held up by it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

REJECTION_DELAY = 2.0  # seconds before the second attempt


def retry_at(attempts: int, backoff_max: float) -> datetime:
    """Return when a row rejected ``attempts`` times may be claimed again."""
    delay = min(REJECTION_DELAY * 2 ** (attempts - 1), max(backoff_max, REJECTION_DELAY))
    return timezone.now() + timedelta(seconds=delay)


def retry_backoff_over(now: datetime | None = None) -> Q:
    """Return the filter of rows not backing off after a rejection, as of ``now``."""
    return Q(retry_at__isnull=True) | Q(retry_at__lte=now or timezone.now())
