"""Publishing on commit: the sending process publishes the rows it committed, the relay backs it.

With ``KEW["OUTBOX"]["PUBLISH_ON_COMMIT"]`` (True, or a list of queues)
``Channel.send`` gives each eligible row a ``retry_at`` ``GRACE`` seconds
ahead, so that the relay leaves the row to its sender that long, and hands
the rows, as they are in memory, to the process's ``CommitPublisher`` once
the transaction commits (never if it rolls back); no NOTIFY is sent for
them. Scheduled rows and topics' rows are not eligible: they wait for the
relay as before. See docs/guarantees.md#publishing-on-commit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction

from kew_django.conf import DEFAULTS, section
from kew_django.outbox.committed import commit_publishers
from kew_django.outbox.validation import TOPIC

DEFAULT_GRACE = float(DEFAULTS["OUTBOX"]["GRACE"])


def grace_for(queue: str, headers: Mapping[str, str], deliver_at: datetime | None) -> float | None:
    """Return the grace of a row to ``queue`` its sender publishes itself; None: the relay does."""
    config = section("OUTBOX")
    wanted = config.get("PUBLISH_ON_COMMIT")
    if not wanted or deliver_at is not None or TOPIC in headers:
        return None
    if wanted is not True and queue not in wanted:  # a list of queues (checked: kew.E050)
        return None
    grace = config.get("GRACE", DEFAULT_GRACE)
    return float(grace) if valid_grace(grace) else DEFAULT_GRACE  # a bad one is kew.E050


def valid_grace(value: Any) -> bool:
    """Return whether ``value`` is a usable ``GRACE``: a positive, finite number of seconds."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def hold_for_sender(now: datetime, grace: float) -> datetime:
    """Return the ``retry_at`` of a row its sender publishes: when the relay may take it."""
    return now + timedelta(seconds=grace)


def publish_on_commit(alias: str, rows: Sequence[Any], *, using: str, grace: float) -> None:
    """Hand ``rows`` to this process's publisher for ``alias`` once the transaction commits.

    Outside a transaction (autocommit) they are handed at once. The hand-off
    never blocks on the broker or the database.
    """
    publisher = commit_publishers.get(alias, using, grace=grace)
    transaction.on_commit(partial(publisher.hand, list(rows)), using=using, robust=True)
