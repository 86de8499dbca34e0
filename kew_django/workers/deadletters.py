"""Dead letters: messages a consumer gave up on, written to the database."""

from __future__ import annotations

import traceback as tb
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from kew.providers.base import Delivery
from kew.providers.headers import CONTENT_TYPE, FIRST_FAILED_AT, application_properties
from kew_django.models import DeadLetter

__all__ = ["FIRST_FAILED_AT", "already_recorded", "first_failed_at", "record", "takes_dead_letter"]

Hook = TypeVar("Hook", bound=Callable[..., Any])


def takes_dead_letter(hook: Hook) -> Hook:
    """Mark an ``on_exhausted`` hook to be called as ``hook(data, error, letter)``.

    ``letter`` is the ``DeadLetter`` the worker wrote for the message, in the
    transaction the hook runs in (so its ``pk`` is set).
    """
    hook.takes_dead_letter = True  # type: ignore[attr-defined]  # a flag, as csrf_exempt sets
    return hook


def call_exhausted(
    hook: Callable[..., Any], data: Any, error: BaseException | None, letter: DeadLetter
) -> Any:
    """Call ``hook`` as ``on_exhausted``: with the dead letter if it takes it; return its answer."""
    if getattr(hook, "takes_dead_letter", False):
        return hook(data, error, letter)
    return hook(data, error)


def first_failed_at(delivery: Delivery) -> datetime | None:
    """Return when this message first failed, if an earlier delivery failed."""
    value = delivery.properties.get(FIRST_FAILED_AT)
    return parse_datetime(value) if value else None


def record(
    delivery: Delivery,
    *,
    reason: str,
    message_id: str | None,
    attempts: int,
    error: BaseException | str | None,
    using: str,
) -> DeadLetter:
    """Write a dead letter for ``delivery``: raw payload, headers, error and traceback."""
    now = timezone.now()
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}"
        trace = "".join(tb.format_exception(error))
    else:
        text, trace = error or "", ""
    return DeadLetter.objects.using(using).create(
        queue=delivery.queue,
        message_id=message_id or "",
        payload=bytes(delivery.payload),
        content_type=delivery.properties.get(CONTENT_TYPE, "application/json"),
        headers=application_properties(delivery.properties),
        reason=reason,
        error=text[:10000],
        traceback=trace[:100000],
        attempts=attempts,
        first_failed_at=first_failed_at(delivery) or now,
        last_failed_at=now,
    )


def already_recorded(delivery: Delivery, message_id: str | None, attempts: int, using: str) -> bool:
    """Return whether this very delivery was dead-lettered before (a crash before its ack)."""
    if not message_id:
        return False
    return (
        DeadLetter.objects.using(using)
        .filter(queue=delivery.queue, message_id=message_id, attempts=attempts)
        .exists()
    )
