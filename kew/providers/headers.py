"""How a ``Message`` travels through a provider: Kew's header names and the mapping both ways.

Kew's own properties start with ``kew-``; handlers never see them
(``application_properties``). See ``docs/core.md`` for what each carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

from kew.message import Message, utcnow
from kew.providers.base import Delivery, DeliveryOptions

T = TypeVar("T")

KEW_PREFIX = "kew-"  # application properties must not start with it
DELIVERY_COUNT = "kew-delivery-count"  # absent on the first delivery
CONTENT_TYPE = "kew-content-type"  # absent for JSON
FIRST_FAILED_AT = "kew-first-failed-at"  # ISO time; carried by retries


def application_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """Return ``properties`` without Kew's own (``kew-...``)."""
    return {k: v for k, v in properties.items() if not k.startswith(KEW_PREFIX)}


def delivery_count(delivery: Delivery) -> int:
    """Return how many times this data has been delivered, counting this delivery."""
    try:
        return max(1, int(delivery.properties.get(DELIVERY_COUNT, "1")))
    except ValueError:
        return 1


def delivery_options(message: Message, *, durable: bool = True) -> DeliveryOptions:
    """Return the options that carry ``message``'s metadata to a provider."""
    properties = dict(message.properties)
    if message.delivery_count > 1:
        properties[DELIVERY_COUNT] = str(message.delivery_count)
    return DeliveryOptions(
        durable=durable,
        deliver_at=message.deliver_at,
        message_id=message.message_id,
        properties=properties,
    )


def message_from(delivery: Delivery, data: T) -> Message[T]:
    """Return the Message a handler sees: ``data`` with the delivery's metadata."""
    return Message(
        data,
        delivery_count=delivery_count(delivery),
        message_id=delivery.message_id,
        properties=application_properties(delivery.properties),
    )


def retry_options(delivery: Delivery, message: Message[T], delay: timedelta) -> DeliveryOptions:
    """Return how to send the retry of ``message`` (from ``delivery``), ``delay`` from now.

    The retry is ``message.retry_after(delay)``; it keeps the delivery's
    content type and when the first delivery failed.
    """
    options = delivery_options(message.retry_after(delay))
    properties = dict(options.properties)
    properties[FIRST_FAILED_AT] = delivery.properties.get(FIRST_FAILED_AT) or utcnow().isoformat()
    if CONTENT_TYPE in delivery.properties:
        properties[CONTENT_TYPE] = delivery.properties[CONTENT_TYPE]
    return replace(options, properties=properties)
