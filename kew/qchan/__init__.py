"""A channel implemented on a message queue, over the SPI in ``kew.qchan.spi``."""

from kew.qchan.sink import AckMode, QueueSink, message_from
from kew.qchan.source import QueueSource, delivery_options
from kew.qchan.spi import (
    Capability,
    Connector,
    Consumer,
    Delivery,
    DeliveryOptions,
    Outgoing,
    Producer,
)

__all__ = [
    "AckMode", "Capability", "Connector", "Consumer", "Delivery", "DeliveryOptions",
    "Outgoing", "Producer", "QueueSink", "QueueSource", "delivery_options", "message_from",
]
