"""Topics on Artemis: a MULTICAST address per topic, a durable subscription queue per subscription.

Subscription ``name`` of ``topic`` is the STOMP durable subscription
made with ``client-id`` ``topic`` and ``durable-subscription-name``
``name``: the MULTICAST queue ``topic.name`` on address ``topic``, which
Kew reaches by its fully qualified name ``topic::topic.name`` (to
consume it, and to send a retry to it alone).
"""

from __future__ import annotations

import uuid

from kew.errors import ConfigurationError
from kew.providers.artemis.config import ArtemisConfig
from kew.providers.artemis.connection import FailoverConnection
from kew.providers.artemis.wire import BrokerRefused, new_receipt
from kew.providers.base import SUBSCRIPTION_SEPARATOR, subscription_queue

ANYCAST, MULTICAST = "ANYCAST", "MULTICAST"


def destination(queue: str) -> tuple[str, str]:
    """Return the STOMP destination and routing type of Kew queue ``queue``."""
    topic, separator, name = queue.partition(SUBSCRIPTION_SEPARATOR)
    if not separator:
        return queue, ANYCAST
    return f"{topic}{SUBSCRIPTION_SEPARATOR}{topic}.{name}", MULTICAST


def queue_name(queue: str) -> str:
    """Return the name Artemis knows Kew queue ``queue`` by (``t.n`` for subscription ``t::n``)."""
    target, _ = destination(queue)
    return target.partition(SUBSCRIPTION_SEPARATOR)[2] or target


def subscribe(config: ArtemisConfig, topic: str, name: str) -> str:
    """Create the durable subscription if missing; return its Kew queue.

    A short connection subscribes and disconnects. Subscribing to a
    subscription that has messages waiting may take its first one for
    that moment: it comes back marked redelivered.
    """
    queue = subscription_queue(topic, name)
    connection = FailoverConnection(config, client_id=topic)
    try:
        wire = connection.ensure()
        receipt = new_receipt()
        headers = {
            "subscription-type": MULTICAST,
            "durable-subscription-name": name,
            "consumer-window-size": "0",
            "receipt": receipt,
        }
        wire.subscribe(topic, uuid.uuid4().hex, headers)
        try:
            wire.wait_receipt(receipt, config.receipt_timeout, f"the subscription {queue!r}")
        except BrokerRefused as refused:
            raise ConfigurationError(
                f"Artemis refused durable subscription {queue!r}: {refused}"
            ) from None
    finally:
        connection.close()
    return queue
