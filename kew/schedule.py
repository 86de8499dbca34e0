"""Retry schedules and repeaters: run a consumer again at given intervals."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Generic, TypeVar

from kew.errors import ConfigurationError
from kew.message import Message

T = TypeVar("T")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")


def parse_interval(text: str) -> timedelta:
    """Parse one interval such as ``10s``, ``2m``, ``1.5h``, ``1d`` or ``250ms``."""
    match = _INTERVAL.match(text.strip())
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
    """What a repeatable consumer asks for after handling data."""

    REPEAT = "repeat"
    STOP = "stop"


@dataclass(frozen=True)
class Reschedule(Generic[T]):
    """A request to deliver ``data`` again after ``delay``."""

    data: T
    delay: timedelta


# A reschedulable task: handles a message, may ask for its data to come again.
Reschedulable = Callable[[Message[T]], "Reschedule[T] | None"]


class Repeater(Generic[T]):
    """Run ``consumer`` on data and again at each interval while it answers REPEAT.

    After the last interval, the next REPEAT hands the data to
    ``on_exhausted`` (once) instead. The consumer returns a RepeatAction or
    None (None means STOP). Exceptions are not caught: a caller that wants
    an error to count as REPEAT says so with ``retry_on``.
    Use it as the task of a ``ReschedulingSink``.
    """

    def __init__(
        self,
        consumer: Callable[[T], RepeatAction | None],
        schedule: Schedule | Iterable[timedelta | float | str],
        *,
        on_exhausted: Callable[[T], None] | None = None,
        retry_on: tuple[type[BaseException], ...] = (),
    ):
        self.consumer = consumer
        self.schedule = schedule if isinstance(schedule, Schedule) else Schedule.of(*schedule)
        self.on_exhausted = on_exhausted
        self.retry_on = retry_on

    @classmethod
    def once_off(
        cls,
        consumer: Callable[[T], RepeatAction | None],
        *,
        on_exhausted: Callable[[T], None] | None = None,
        retry_on: tuple[type[BaseException], ...] = (),
    ) -> Repeater[T]:
        """Return a repeater that tries once: a REPEAT goes straight to ``on_exhausted``."""
        return cls(consumer, Schedule(), on_exhausted=on_exhausted, retry_on=retry_on)

    def __call__(self, message: Message[T]) -> Reschedule[T] | None:
        """Handle one delivery; return the reschedule request, if any."""
        try:
            action = self.consumer(message.data)
        except self.retry_on:
            action = RepeatAction.REPEAT
        if action is not RepeatAction.REPEAT:
            return None
        delay = self.schedule.delay_after(message.delivery_count)
        if delay is None:
            if self.on_exhausted is not None:
                self.on_exhausted(message.data)
            return None
        return Reschedule(message.data, delay)
