"""Periodic jobs: the ``@periodic`` decorator and ``periodic_jobs``, the registry it fills."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, TypeVar

from django.conf import settings

from kew.errors import ConfigurationError
from kew_django.outbox.channel import Channel
from kew_django.periodic_jobs.timing import Cron, Every, Timing

Target = TypeVar("Target")


class CatchUp(StrEnum):
    """Which missed ticks a job fires after downtime (docs/periodic.md#catch-up)."""

    LATEST = "latest"  # the last missed tick only
    ALL = "all"  # every missed tick, oldest first
    NONE = "none"  # none: the next tick on time


@dataclass(frozen=True, eq=False)
class PeriodicSpec:
    """One periodic job: when it is due and what a tick does.

    ``channel`` and ``build``: a tick sends ``build(tick)`` to the channel.
    ``task``: a tick enqueues that ``django.tasks`` task with no arguments.
    """

    name: str
    every: timedelta | str | None = None
    cron: str | None = None
    timezone: str | None = None
    catch_up: CatchUp | str = CatchUp.LATEST
    channel: Channel[Any] | None = None
    build: Callable[[datetime], Any] | None = None
    task: Any = None

    @cached_property
    def timing(self) -> Timing:
        """Return when the job is due; raises ConfigurationError on a bad declaration."""
        if (self.every is None) == (self.cron is None):
            raise ConfigurationError("give exactly one of every= and cron=")
        if self.every is not None:
            if self.timezone is not None:
                raise ConfigurationError("timezone= applies to cron= only; every= counts in UTC")
            return Every(self.every)
        assert self.cron is not None
        return Cron(self.cron, self.timezone or settings.TIME_ZONE)

    @cached_property
    def policy(self) -> CatchUp:
        """Return the catch-up policy; raises ConfigurationError on an unknown one."""
        try:
            return CatchUp(self.catch_up)
        except ValueError:
            known = ", ".join(repr(p.value) for p in CatchUp)
            raise ConfigurationError(f"catch_up={self.catch_up!r}: use one of {known}") from None


class PeriodicRegistry:
    """The periodic jobs of one project, keyed by name. One name, one job."""

    def __init__(self) -> None:
        self._specs: dict[str, PeriodicSpec] = {}
        self.duplicates: list[PeriodicSpec] = []

    def register(self, spec: PeriodicSpec) -> PeriodicSpec:
        """Add ``spec``; a second job of the same name is kept as a duplicate (``kew.E042``)."""
        known = self._specs.get(spec.name)
        if known is not None and _target(known) != _target(spec):
            self.duplicates.append(spec)
            return spec
        self._specs[spec.name] = spec
        return spec

    def problems(self) -> list[tuple[str, str, str]]:
        """Return ``(check id, message, hint)`` for each job that cannot run."""
        found = [
            ("kew.E042", f"two periodic jobs are named {spec.name!r}", "Give one of them name=.")
            for spec in self.duplicates
        ]
        for spec in self:
            try:
                spec.timing  # noqa: B018 - parses the declaration
                spec.policy  # noqa: B018
            except ConfigurationError as error:
                zone = "time zone" in str(error)
                hint = ZONE_HINT if zone else EXPRESSION_HINT
                found.append(("kew.E041" if zone else "kew.E040", f"{spec.name}: {error}", hint))
        return found

    def clear(self) -> None:
        """Forget every job."""
        self._specs.clear()
        self.duplicates.clear()

    def get(self, name: str) -> PeriodicSpec:
        """Return the job called ``name``; KeyError if there is none."""
        return self._specs[name]

    def __iter__(self) -> Iterator[PeriodicSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)


EXPRESSION_HINT = (
    "e.g. every='5m' or cron='0 3 * * *' (minute hour day month weekday), "
    "and catch_up='latest', 'all' or 'none'."
)
ZONE_HINT = "Name an IANA time zone, e.g. timezone='Europe/Paris' (default: settings.TIME_ZONE)."

periodic_jobs = PeriodicRegistry()


def periodic(
    *,
    every: timedelta | str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    channel: Channel[Any] | None = None,
    catch_up: CatchUp | str = CatchUp.LATEST,
    name: str | None = None,
) -> Callable[[Target], Target]:
    """Run the decorated thing on a clock: once per tick across every Kew process.

    Decorate a ``django.tasks`` task (it is enqueued with no arguments) or,
    with ``channel=``, a function that takes the tick (an aware UTC
    datetime) and returns the data to send to that channel. ``every``
    ("30s", "5m", a timedelta) or ``cron`` ("0 3 * * *", read in
    ``timezone``, default ``settings.TIME_ZONE``). ``kew_run`` and
    ``kew_consume`` fire the ticks; ``catch_up`` says which ticks missed
    while none ran are fired. The name (default: the dotted path) keys the
    job's state in the database: renaming a job starts it afresh.
    """

    def decorate(target: Target) -> Target:
        options: dict[str, Any] = {"every": every, "cron": cron, "timezone": timezone}
        if channel is not None:
            options.update(channel=channel, build=target)
            default = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
        elif hasattr(target, "enqueue") and hasattr(target, "module_path"):
            options.update(task=target)
            default = target.module_path  # type: ignore[attr-defined]
        else:
            raise ConfigurationError(
                f"@periodic on {target!r}: decorate a django.tasks task, "
                "or a function with channel= (it returns the data a tick sends)"
            )
        periodic_jobs.register(PeriodicSpec(name or default, catch_up=catch_up, **options))
        return target

    return decorate


def _target(spec: PeriodicSpec) -> object:
    if spec.task is not None:
        return spec.task.module_path
    build = spec.build
    return (getattr(build, "__module__", None), getattr(build, "__qualname__", None))
