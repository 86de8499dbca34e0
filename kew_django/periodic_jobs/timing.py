"""When a periodic job is due: a fixed interval (``every``) or a cron expression in a time zone.

A tick is one instant a job is due. Every process computes the same ticks
from the same declaration, so a tick names one firing across processes.
Interval ticks are whole multiples of the interval since the Unix epoch
(UTC): ``every="5m"`` is due at :00, :05, ... Cron ticks are the times
``cronsim`` yields in the job's zone; see docs/periodic.md for daylight
saving.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from kew.errors import ConfigurationError
from kew.schedule import parse_interval

try:
    from cronsim import CronSim
except ImportError:  # optional: pip install kew[periodic]; only cron= needs it
    CronSim = None  # type: ignore[assignment,misc]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def as_interval(value: timedelta | str, what: str) -> timedelta:
    """Return ``value`` ("30s", "5m", "1d" or a timedelta); a ConfigurationError names ``what``."""
    if isinstance(value, timedelta):
        return value
    try:
        return parse_interval(value)
    except (ConfigurationError, AttributeError):
        raise ConfigurationError(
            f"{what}: {value!r} is no interval: write a number and a unit (s, m, h, d), e.g. '5m'"
        ) from None


class Every:
    """Ticks ``interval`` apart, aligned on the Unix epoch."""

    def __init__(self, interval: timedelta | str):
        self.interval = as_interval(interval, "every=")
        if self.interval < SECOND or self.interval % SECOND:
            raise ConfigurationError(f"every= needs whole seconds, at least 1 s; got {interval!r}")
        self.text = interval if isinstance(interval, str) else f"{self.interval.total_seconds():g}s"

    def __str__(self) -> str:
        return f"every {self.text}"

    def latest(self, at: datetime) -> datetime:
        """Return the last tick at or before ``at``."""
        return EPOCH + (at - EPOCH) // self.interval * self.interval

    def after(self, start: datetime) -> Iterator[datetime]:
        """Yield the ticks after ``start``, in order."""
        tick = self.latest(start) + self.interval
        while True:
            yield tick
            tick += self.interval


class Cron:
    """Ticks of a cron expression (5 fields, or 6 with seconds first) in time zone ``zone``."""

    def __init__(self, expression: str, zone: str):
        if CronSim is None:
            raise ConfigurationError("cron= needs the cronsim library: pip install kew[periodic]")
        try:
            self.zone = ZoneInfo(zone)
        except (ValueError, LookupError) as error:  # ZoneInfoNotFoundError is a LookupError
            raise ConfigurationError(f"unknown time zone {zone!r}") from error
        self.expression = expression
        try:
            CronSim(expression, datetime.now(self.zone))
        except Exception as error:  # noqa: BLE001 - cronsim raises CronSimError and others
            raise ConfigurationError(f"bad cron expression {expression!r}: {error}") from None

    def __str__(self) -> str:
        return f"cron {self.expression!r} ({self.zone.key})"

    def latest(self, at: datetime) -> datetime:
        """Return the last tick at or before ``at``."""
        start = at.astimezone(self.zone).replace(microsecond=0) + SECOND
        return next(CronSim(self.expression, start, reverse=True)).astimezone(UTC)

    def after(self, start: datetime) -> Iterator[datetime]:
        """Yield the ticks after ``start``, in order (UTC)."""
        previous = start
        for tick in CronSim(self.expression, start.astimezone(self.zone)):
            tick = tick.astimezone(UTC)
            if tick > previous:  # the repeated hour of a fall-back day stays in order
                previous = tick
                yield tick


Timing = Every | Cron


def due(timing: Timing, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """Return up to ``limit`` ticks in ``(after, until]``, oldest first."""
    ticks = islice(timing.after(after), limit)
    return [tick for tick in _until(ticks, until)]


def _until(ticks: Iterator[datetime], until: datetime) -> Iterator[datetime]:
    for tick in ticks:
        if tick > until:
            return
        yield tick
