"""Channel abstractions: sources send data, sinks consume it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar, runtime_checkable

from kew.message import Message

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@runtime_checkable
class ChannelSource(Protocol[T_contra]):
    """Sends data asynchronously: ``send`` returns once the channel has accepted it."""

    def send(self, data: T_contra) -> None: ...


@runtime_checkable
class ChannelSink(Protocol[T_contra]):
    """Consumes data delivered by a channel."""

    def consume(self, data: T_contra) -> None: ...


@runtime_checkable
class MessageSource(Protocol[T]):
    """Sends messages, honouring their metadata (schedule, count, id, properties)."""

    def send_message(self, message: Message[T]) -> None: ...


@runtime_checkable
class MessageSink(Protocol[T]):
    """Consumes messages together with their delivery metadata."""

    def consume_message(self, message: Message[T]) -> object: ...


class DataSink(Generic[T]):
    """Adapt a ``ChannelSink`` (or a plain callable) to a ``MessageSink``: metadata is dropped."""

    def __init__(self, sink: ChannelSink[T] | Callable[[T], object]):
        self._consume = sink.consume if isinstance(sink, ChannelSink) else sink

    def consume_message(self, message: Message[T]) -> object:
        """Consume the data; return what the sink answered (e.g. ``RepeatAction.RETRY``)."""
        return self._consume(message.data)
