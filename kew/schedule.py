"""Retry schedules and the retry rule: when to deliver the same data again, when to give up."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Generic, TypeVar

from kew.errors import ConfigurationError, PermanentError
from kew.message import Message

T = TypeVar("T")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_interval(text: str) -> timedelta:
    """Parse one interval such as ``10s``, ``2m``, ``1.5h``, ``1d`` or ``250ms``."""
    match = _INTERVAL.fullmatch(text.strip())
    if not match:
        raise ConfigurationError(
            f"bad retry interval {text!r}: write a number and a unit (ms, s, m, h, d), e.g. '10s'"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class Schedule:
    """The intervals between successive deliveries of the same data."""

    intervals: tuple[timedelta, ...] = ()

    @classmethod
    def of(cls, *intervals: timedelta | float | str) -> Schedule:
        """Build a schedule from timedeltas, seconds, or strings like ``"2m"``."""
        return cls(tuple(_as_interval(i) for i in intervals))

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse ``"10s, 10s, 2m, 1d"`` (commas or spaces between intervals)."""
        return cls(tuple(parse_interval(p) for p in re.split(r"[,\s]+", text.strip()) if p))

    def delay_after(self, delivery_count: int) -> timedelta | None:
        """Return the delay before the delivery after ``delivery_count``; None when exhausted."""
        index = delivery_count - 1
        return self.intervals[index] if 0 <= index < len(self.intervals) else None

    @property
    def max_deliveries(self) -> int:
        """Return how many deliveries the schedule allows in all."""
        return len(self.intervals) + 1


def _as_interval(value: timedelta | float | str) -> timedelta:
    if isinstance(value, timedelta):
        interval = value
    elif isinstance(value, str):
        interval = parse_interval(value)
    else:
        interval = timedelta(seconds=value)
    if interval < timedelta(0):
        raise ConfigurationError(f"retry intervals cannot be negative: {value!r}")
    return interval


class RepeatAction(Enum):
    """What a handler answers after handling data: retry it later, or stop (done)."""

    RETRY = "retry"
    STOP = "stop"


class GiveUpReason(Enum):
    """Why Kew gave up on a message (Django's dead letters show the same values)."""

    EXHAUSTED = "exhausted"  # the schedule ran out
    FAILED = "failed"  # the handler raised PermanentError
    UNDECODABLE = "undecodable"  # the payload could not be decoded
    CRASHED = "crashed"  # its handling ended without an outcome too often (the worker died)


@dataclass(frozen=True)
class Retry(Generic[T]):
    """A decision to deliver ``data`` again after ``delay``."""

    data: T
    delay: timedelta


@dataclass(frozen=True)
class GiveUp:
    """A decision to stop delivering a message; ``error`` is the last failure, if any."""

    reason: GiveUpReason
    error: BaseException | None = None


def after_failure(
    schedule: Schedule, message: Message[T], error: BaseException | None
) -> Retry[T] | GiveUp:
    """Decide what follows a failed delivery: the one retry rule of Kew.

    ``error`` is what the handler raised, or None when it answered RETRY.
    ``PermanentError`` gives up at once (FAILED); otherwise the data is
    retried after the schedule's next interval, and after the last one Kew
    gives up (EXHAUSTED).
    """
    if isinstance(error, PermanentError):
        return GiveUp(GiveUpReason.FAILED, error)
    delay = schedule.delay_after(message.delivery_count)
    if delay is None:
        return GiveUp(GiveUpReason.EXHAUSTED, error)
    return Retry(message.data, delay)


def as_schedule(retry: RetrySpec) -> Schedule:
    """Return ``retry`` (a Schedule, ``"10s 2m"``, or intervals; None: none) as a Schedule."""
    if retry is None:
        return Schedule()
    if isinstance(retry, Schedule):
        return retry
    if isinstance(retry, str):
        return Schedule.parse(retry)
    return Schedule.of(*retry)


# How callers write a retry schedule.
RetrySpec = Schedule | str | Iterable[timedelta | float | str] | None
# Called once with the data and the last error (None after a RETRY answer) when Kew gives up.
ExhaustedHandler = Callable[[T, "BaseException | None"], object]
