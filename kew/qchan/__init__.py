"""A channel implemented on a message queue, over the SPI in ``kew.providers.base``.

``QueueSource`` sends; ``QueueSink`` is the engine that consumes, retries
and gives up (``kew_django``'s workers are the same engine with Django's
hooks).
"""

from kew.providers.base import (
    Capability,
    Delivery,
    DeliveryOptions,
    Outgoing,
    Producer,
    Provider,
    Receiver,
)
from kew.qchan.engine import QueueSink
from kew.qchan.outcomes import (
    FIRST_FAILED_AT,
    AckMode,
    DeliveryOutcome,
    WorkerStats,
    delivery_count,
    message_from,
    retry_options,
)
from kew.qchan.source import QueueSource, delivery_options

__all__ = [
    "FIRST_FAILED_AT",
    "AckMode",
    "Capability",
    "Delivery",
    "DeliveryOptions",
    "DeliveryOutcome",
    "Outgoing",
    "Producer",
    "Provider",
    "QueueSink",
    "QueueSource",
    "Receiver",
    "WorkerStats",
    "delivery_count",
    "delivery_options",
    "message_from",
    "retry_options",
]
