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
from kew.qchan.outcomes import AckMode, DeliveryOutcome, WorkerStats
from kew.qchan.source import QueueSource

__all__ = [
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
]
