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
)
from kew.codecs import BytesCodec, Codec, JsonCodec
from kew.errors import (
    BrokerBlocked,
    ConfigurationError,
    ConnectionLost,
    DecodeError,
    KewError,
    PermanentError,
    ProviderError,
    SendError,
    UnsupportedCapability,
)
from kew.message import Message, utcnow
from kew.providers import connect
from kew.qchan import (
    AckMode,
    Capability,
    DeliveryOptions,
    DeliveryOutcome,
    QueueSink,
    QueueSource,
)
from kew.schedule import GiveUpReason, RepeatAction, Retry, Schedule
from kew.topics import Topic, TopicSource

__all__ = [
    "AckMode",
    "BrokerBlocked",
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
    "DeliveryOutcome",
    "GiveUpReason",
    "JsonCodec",
    "KewError",
    "Message",
    "MessageSink",
    "MessageSource",
    "PermanentError",
    "ProviderError",
    "QueueSink",
    "QueueSource",
    "RepeatAction",
    "Retry",
    "Schedule",
    "SendError",
    "Topic",
    "TopicSource",
    "UnsupportedCapability",
    "connect",
    "utcnow",
]
