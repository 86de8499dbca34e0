"""Admission control at the door: refuse a new import before the backlog grows without bound.

``refusal(user)`` answers 503 with ``Retry-After`` when the imports queue's
backlog (pending outbox rows plus the broker's queue depth where it can
say) has reached ``IMPORT_MAX_BACKLOG``, and 429 with ``Retry-After`` when
the user already has ``IMPORT_MAX_PENDING_PER_USER`` imports pending;
otherwise None and the import is accepted. Nothing accepted is ever
dropped. The bounds are soft: requests checked at the same moment may
pass one bound together. See docs/backpressure.md ("At the door").
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import User
from django.http import JsonResponse

from kew.errors import ProviderError
from kew_django.observability.admission import BACKLOG, PER_KEY, refusals
from kew_django.outbox.backlog import Backlog, pending_rows
from project.imports.messages import IMPORTS_QUEUE, import_requests
from project.imports.models import Import

log = logging.getLogger(__name__)
SETTINGS = ("IMPORT_MAX_BACKLOG", "IMPORT_MAX_PENDING_PER_USER", "IMPORT_RETRY_AFTER")


def imports_backlog() -> Backlog:
    """Return the imports queue's backlog; the outbox's part alone while the broker is away."""
    try:
        return import_requests.backlog()
    except ProviderError as error:  # an outage fills the outbox, which is still counted
        log.warning("imports backlog: the broker's queue depth is unknown (%s)", error)
        return Backlog(IMPORTS_QUEUE, pending_rows(IMPORTS_QUEUE), None)


def refusal(user: User) -> JsonResponse | None:
    """Return the 429 or 503 answer to a new import by ``user``, or None to accept it."""
    limit = settings.IMPORT_MAX_PENDING_PER_USER
    mine = Import.objects.filter(requester=user, status=Import.Status.PENDING).count()
    if mine >= limit:
        return _refuse(
            429, PER_KEY, f"you have {mine} imports pending (at most {limit}); try again later"
        )
    bound = settings.IMPORT_MAX_BACKLOG
    waiting = imports_backlog().total
    if waiting >= bound:
        return _refuse(
            503, BACKLOG, f"{waiting} imports are waiting (at most {bound}); try again later"
        )
    return None


def _refuse(status: int, reason: str, text: str) -> JsonResponse:
    refusals.refused(IMPORTS_QUEUE, reason)
    seconds = settings.IMPORT_RETRY_AFTER
    response = JsonResponse({"error": text, "retry_after": seconds}, status=status)
    response["Retry-After"] = str(seconds)
    return response
