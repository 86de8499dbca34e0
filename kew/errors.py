"""One exception tree for Kew: every error Kew raises is a ``KewError``."""

from __future__ import annotations

from collections.abc import Sequence


class KewError(Exception):
    """Base class of every error Kew raises."""


class ConfigurationError(KewError):
    """A setting, URL or option is wrong; the message says what to fix."""


class UnsupportedCapability(ConfigurationError):
    """A message asked for something its provider cannot do; nothing was sent."""


class ProviderError(KewError):
    """The message-oriented middleware failed."""


class ConnectionLost(ProviderError):
    """The provider cannot reach its broker or database right now.

    Recoverable: retry later. A send that raised this may or may not have
    been stored; callers that must not lose it send again with the same
    message id, which a deduplicating provider stores once.
    """


class BrokerBlocked(ConnectionLost):
    """The broker holds publishers back for now (flow control: a memory or disk alarm).

    Recoverable, as any ``ConnectionLost``: the messages are not at fault.
    Send them again, with the same ids, once the broker accepts again.
    """


class PartlyStored(ConnectionLost):
    """The broker confirmed some messages of a batch and refused the others, for now.

    ``refused`` holds the indexes, in the batch, of the refused messages:
    send those again later (a queue was unavailable or full); the others
    are stored and must not be sent again.
    """

    def __init__(self, message: str, *, refused: Sequence[int]):
        super().__init__(message)
        self.refused = tuple(refused)


class StorageUnavailable(KewError):
    """The application's own storage (its database) is down: not the message's fault.

    Raised out of an engine hook, it leaves the delivery unacknowledged and
    its delivery count unchanged; the engine's loop backs off and carries on.
    """


class SendError(ProviderError):
    """The broker refused a message; sending it again unchanged will fail again."""

    def __init__(self, message: str, *, queue: str | None = None, index: int | None = None):
        super().__init__(message)
        self.queue = queue
        self.index = index


class DecodeError(KewError):
    """A payload could not be decoded; ``raw`` keeps the bytes for inspection."""

    def __init__(self, message: str, *, raw: bytes):
        super().__init__(message)
        self.raw = raw


class PermanentError(KewError):
    """Raised by a handler when retrying cannot help: Kew gives up on the message at once."""
