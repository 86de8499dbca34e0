"""Messages: data plus the metadata that configures its delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")
RETRY_SEPARATOR = "#"


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Message(Generic[T]):
    """Data to deliver, with optional metadata.

    Each metadata field that is set asks its provider for one capability
    (``kew.Capability``); a provider without it refuses the message before
    anything is sent.

    - ``deliver_at``: not before this (aware) time.
    - ``delivery_count``: deliveries of this data so far, this one included;
      the retry schedule picks its next interval by it.
    - ``message_id``: a stable id; deduplicating providers store it once.
    - ``properties``: string headers carried with the payload.
    """

    data: T
    deliver_at: datetime | None = None
    delivery_count: int = 1
    message_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.deliver_at is not None and self.deliver_at.tzinfo is None:
            raise ValueError("deliver_at must be timezone-aware (use datetime.now(UTC))")
        if self.delivery_count < 1:
            raise ValueError(f"delivery_count starts at 1, got {self.delivery_count}")

    @property
    def origin_id(self) -> str | None:
        """Return the id of the first delivery of this data (retries share it)."""
        return self.message_id.partition(RETRY_SEPARATOR)[0] if self.message_id else None

    def retry_after(self, delay: timedelta, data: T | None = None) -> Message[T]:
        """Return the retry of this message: the next delivery, ``delay`` from now.

        The copy counts one more delivery. Its id is ``<origin id>#<count>``:
        new, so a deduplicating broker stores it, yet the same if a crash
        makes the caller send the same retry twice, so the broker drops the
        second. Idempotent consumers key on ``origin_id``.
        """
        count = self.delivery_count + 1
        origin = self.origin_id
        return replace(
            self,
            data=self.data if data is None else data,
            deliver_at=utcnow() + delay,
            delivery_count=count,
            message_id=f"{origin}{RETRY_SEPARATOR}{count}" if origin else None,
        )
