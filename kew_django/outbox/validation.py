"""Refuse at ``send()`` what the channel's provider would never take.

The relay publishes an outbox row long after the sender's transaction
committed; a row its provider refuses for good (an Artemis-reserved
property name such as ``priority``, a NUL in a value, headers over
``max_header_bytes``) would only fail there. ``validate_outgoing`` asks
the provider itself (``Provider.validate``), with the options the relay
will use, so the sender gets the ``ConfigurationError`` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from kew.providers.base import Capability, DeliveryOptions, Outgoing
from kew.providers.headers import CONTENT_TYPE
from kew_django.providers import ProviderNotConfigured, get_provider

JSON = "application/json"
TOPIC = "kew-topic"  # an outbox header: the row's queue names a topic (``Topic.publish``)


def relay_options(
    *,
    message_id: str,
    headers: Mapping[str, str],
    content_type: str,
    deliver_at: datetime | None,
    scheduled: bool,
) -> DeliveryOptions:
    """Return the delivery options the relay sends an outbox row with."""
    properties = dict(headers)
    properties.pop(TOPIC, None)  # said by ``Outgoing.topic``, not carried
    if content_type != JSON:  # consumers assume JSON when the property is absent
        properties[CONTENT_TYPE] = content_type
    return DeliveryOptions(
        deliver_at=deliver_at if scheduled else None,
        message_id=message_id,
        properties=properties,
    )


def validate_outgoing(
    alias: str,
    queue: str,
    *,
    headers: Mapping[str, str],
    content_type: str,
    deliver_at: datetime | None,
) -> None:
    """Raise ConfigurationError if provider ``alias`` could never send such a message.

    A provider alias that is not configured is left to the system checks
    (``kew.E001``); the generic rules were applied by the caller.
    """
    try:
        provider = get_provider(alias)
    except ProviderNotConfigured:
        return
    options = relay_options(
        message_id=str(uuid.uuid4()),  # every outbox id has this length
        headers=headers,
        content_type=content_type,
        deliver_at=deliver_at,
        scheduled=Capability.SCHEDULED_DELIVERY in provider.capabilities,
    )
    provider.validate(Outgoing(queue, b"", options, topic=TOPIC in headers))
