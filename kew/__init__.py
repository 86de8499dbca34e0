"""Kew: typed, reliable messaging over pluggable message-oriented middleware.

The core never imports Django; ``kew_django`` adds the outbox, relay,
consumer workers and admin on top.
"""

from kew.channels import (
    ChannelSink,
    ChannelSource,
    DataSink,
    MessageSink,
    MessageSource,
    ReschedulingSink,
)
from kew.codecs import BytesCodec, Codec, JsonCodec
from kew.errors import (
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    KewError,
    ProviderError,
    SendError,
    UnsupportedCapability,
)
from kew.message import Message, utcnow
from kew.providers import connect
from kew.qchan import AckMode, Capability, DeliveryOptions, QueueSink, QueueSource
from kew.schedule import RepeatAction, Repeater, Reschedule, Schedule

__all__ = [
    "AckMode",
    "BytesCodec",
    "Capability",
    "ChannelSink",
    "ChannelSource",
    "Codec",
    "ConfigurationError",
    "ConnectionLost",
    "DataSink",
    "DecodeError",
    "DeliveryOptions",
    "JsonCodec",
    "KewError",
    "Message",
    "MessageSink",
    "MessageSource",
    "ProviderError",
    "QueueSink",
    "QueueSource",
    "RepeatAction",
    "Repeater",
    "Reschedule",
    "ReschedulingSink",
    "Schedule",
    "SendError",
    "UnsupportedCapability",
    "connect",
    "utcnow",
]
