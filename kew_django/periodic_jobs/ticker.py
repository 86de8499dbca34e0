"""The ticker: a thread in every ``kew_run``/``kew_consume`` process that fires due ticks.

There is no scheduler process: each ticker reads the jobs' rows, works out
which ticks are due by the database's clock (``providers.clock``), and
tries to fire them; ``firing.fire`` lets exactly one process succeed per
tick. A process that dies takes nothing with it: the others fire.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import router
from django.utils import timezone

from kew_django.conf import section
from kew_django.db.connections import close_db_connections
from kew_django.errors import KewImproperlyConfigured
from kew_django.models import PeriodicJob
from kew_django.periodic_jobs.firing import fire
from kew_django.periodic_jobs.registry import CatchUp, PeriodicSpec, periodic_jobs
from kew_django.periodic_jobs.timing import as_interval, due
from kew_django.providers.clock import Clock

log = logging.getLogger(__name__)
LIMIT = 100  # ticks fired per job and turn: a long catch-up ("all") goes on at the next turn
MAX_WAIT = 5.0  # seconds between two turns at most
MIN_WAIT = 0.05  # a tick the database's clock does not yet see as due is tried this soon
ERROR_WAIT = 5.0  # after a database error
Plan = list[tuple[datetime, bool]]  # (tick, fire it: True; skip it: False)


def plan(spec: PeriodicSpec, done_until: datetime, now: datetime, grace: timedelta) -> Plan:
    """Return the ticks to handle now, oldest first, each to fire or to skip.

    A tick is missed once it has been due for longer than ``grace``; ticks
    within it are on time and always fire. Of the missed ticks, ``latest``
    fires the last one unless an on-time tick follows, ``all`` fires every
    one, ``none`` skips them all.
    """
    if spec.policy is CatchUp.ALL:
        return [(tick, True) for tick in due(spec.timing, done_until, now, LIMIT)]
    on_time = [(tick, True) for tick in due(spec.timing, max(done_until, now - grace), now, LIMIT)]
    missed = spec.timing.latest(now - grace) if now - grace > done_until else None
    if missed is None or missed <= done_until:
        return on_time
    fire_missed = spec.policy is CatchUp.LATEST and not on_time
    return [(missed, fire_missed), *on_time]


class Ticker:
    """Fire the due ticks of ``specs`` until ``stop`` is set; one per process.

    ``now`` replaces the clock (tests); by default it is this host's time
    moved by the database's offset. ``grace``: see ``plan``
    (``KEW["PERIODIC"]["GRACE"]``).
    """

    def __init__(
        self,
        specs: list[PeriodicSpec],
        *,
        using: str | None = None,
        grace: timedelta | None = None,
        now: Callable[[], datetime] | None = None,
    ):
        self.specs = specs
        self.using = using or router.db_for_write(PeriodicJob)
        default = section("PERIODIC")["GRACE"]
        self.grace = grace if grace is not None else as_interval(default, "GRACE")
        self.clock = Clock(self.using)
        self._now = now

    def now(self) -> datetime:
        """Return the time by the database's clock (or the injected one)."""
        return self._now() if self._now else timezone.now() + self.clock.offset()

    def run(self, stop: threading.Event) -> None:
        """Turn until ``stop`` is set; a database error waits and tries again."""
        names = ", ".join(spec.name for spec in self.specs)
        log.info("kew: ticker started for %s", names)
        while not stop.is_set():
            try:
                wait = self.turn()
            except Exception as error:  # noqa: BLE001 - the database is down: try again
                log.warning("kew: periodic jobs not fired: %s (trying again)", error)
                close_db_connections()
                wait = ERROR_WAIT
            stop.wait(wait)
        close_db_connections()

    def turn(self) -> float:
        """Fire what is due now; return the seconds to wait for the next tick."""
        now = self.now()
        wake = now + timedelta(seconds=MAX_WAIT)
        jobs = self.jobs(now)
        for spec in self.specs:
            job = jobs[spec.name]
            if not job.paused:
                self.fire_due(spec, job.done_until, now)
            wake = min(wake, next(spec.timing.after(max(now, job.done_until))))
        seconds = (wake - self.now()).total_seconds()
        return min(MAX_WAIT, max(MIN_WAIT, seconds))

    def fire_due(self, spec: PeriodicSpec, done_until: datetime, now: datetime) -> None:
        """Handle ``spec``'s due ticks; a failure of the job's code leaves its tick due."""
        for tick, send in plan(spec, done_until, now, self.grace):
            try:
                done = fire(spec, tick, using=self.using, send=send)
            except Exception:
                log.exception("kew: periodic job %s: tick %s failed", spec.name, tick.isoformat())
                return
            if done:
                what = "fired" if send else "skipped missed ticks up to"
                log.info("kew: periodic job %s %s %s", spec.name, what, tick.isoformat())

    def jobs(self, now: datetime) -> dict[str, PeriodicJob]:
        """Return the jobs' rows by name, creating the missing ones as due from ``now`` on."""
        names = [spec.name for spec in self.specs]
        jobs = PeriodicJob.objects.using(self.using)
        rows = {row.name: row for row in jobs.filter(name__in=names)}
        missing = [PeriodicJob(name=name, done_until=now) for name in names if name not in rows]
        if missing:
            jobs.bulk_create(missing, ignore_conflicts=True)  # another process may create them too
            rows = {row.name: row for row in jobs.filter(name__in=names)}
        return rows


def ticker_for_process() -> Ticker | None:
    """Return the ticker of this process; None without jobs or with ``PERIODIC["ENABLED"]`` off."""
    specs = list(periodic_jobs)
    if not specs or not section("PERIODIC")["ENABLED"]:
        return None
    problems = periodic_jobs.problems()
    if problems:
        raise KewImproperlyConfigured(problems[0][1])
    return Ticker(specs)
