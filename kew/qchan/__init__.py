"""A channel implemented on a message queue, over the SPI in ``kew.providers.base``."""

from kew.providers.base import (
    Capability,
    Delivery,
    DeliveryOptions,
    Outgoing,
    Producer,
    Provider,
    Receiver,
)
from kew.qchan.sink import AckMode, QueueSink, message_from
from kew.qchan.source import QueueSource, delivery_options

__all__ = [
    "AckMode",
    "Capability",
    "Provider",
    "Receiver",
    "Delivery",
    "DeliveryOptions",
    "Outgoing",
    "Producer",
    "QueueSink",
    "QueueSource",
    "delivery_options",
    "message_from",
]
