"""Run the relay and consumer workers on threads until told to stop (SIGTERM, SIGINT)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Any

from kew.errors import KewError
from kew.providers.base import Capability
from kew.qchan.observe import EngineObserver
from kew.schedule import parse_interval
from kew_django.conf import section
from kew_django.db.connections import close_db_connections
from kew_django.periodic_jobs.ticker import ticker_for_process
from kew_django.providers import get_provider
from kew_django.relay.publisher import Relay
from kew_django.workers import sweep
from kew_django.workers.broker_dead_letters import BrokerDeadLetters
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import Worker, WorkerStats

log = logging.getLogger(__name__)
REPEAT_WINDOW = 2.0  # seconds in which a second stop signal is the first one sent twice


def relay_from_settings(*, provider: str = "default", **overrides: Any) -> Relay:
    """Return a Relay configured by KEW["RELAY"], with keyword ``overrides``."""
    config = section("RELAY")
    retention = config["RETENTION"]
    options: dict[str, Any] = {
        "batch_size": int(config["BATCH_SIZE"]),
        "max_attempts": int(config["MAX_ATTEMPTS"]),
        "poll_interval": float(config["POLL_INTERVAL"]),
        "backoff_max": float(config["BACKOFF_MAX"]),
        "progress_interval": float(config["PROGRESS_INTERVAL"]),
        "retention": retention if isinstance(retention, timedelta) else parse_interval(retention),
    }
    options.update({k: v for k, v in overrides.items() if v is not None})
    return Relay(get_provider(provider), **options)


def broker_dead_letters_for(provider: Any, specs: list[ConsumerSpec]) -> BrokerDeadLetters | None:
    """Return a drainer of the broker's dead-letter queue for ``specs``' queues, if wanted."""
    queue = section("CONSUMERS").get("BROKER_DEAD_LETTERS")
    if not specs or not queue or Capability.DEAD_LETTER_ADDRESS not in provider.capabilities:
        return None
    return BrokerDeadLetters(
        provider,
        [spec.queue for spec in specs],
        consumers={spec.queue: spec for spec in specs},
        dead_letter_queue=queue,
    )


class ComponentDied(KewError):
    """A relay or worker thread ended while the runner was not stopping."""


class Runner:
    """Threads for a relay (optional), ``concurrency`` workers per consumer, the periodic ticker.

    ``run`` raises ``ComponentDied`` when any thread ends by itself (the
    commands then exit with status 1, for a supervisor to restart them):
    a process must never go on with its relay or a worker missing; what
    ended it is logged with its traceback ("kew: thread ... died"). Once
    ``stop`` is set, the threads get ``KEW["CONSUMERS"]["SHUTDOWN_GRACE"]``
    seconds to finish their deliveries; ``run`` then returns even if some
    have not (their deliveries, unacked, come back). While it runs, it
    clears the "in progress" rows of dead workers (``workers.sweep``).
    """

    def __init__(
        self,
        specs: list[ConsumerSpec],
        *,
        relay: Relay | None = None,
        provider: str = "default",
        concurrency: int | None = None,
        poll_interval: float | None = None,
        progress_interval: float | None = None,
        observer: EngineObserver | None = None,
    ):
        config = section("CONSUMERS")
        self.specs = specs
        self.relay = relay
        self.provider = get_provider(provider) if specs else None
        self.concurrency = concurrency or int(config["CONCURRENCY"])
        self.poll_interval = poll_interval or float(config["POLL_INTERVAL"])
        interval = config["PROGRESS_INTERVAL"] if progress_interval is None else progress_interval
        self.progress_interval = float(interval)
        self.stats = {spec.queue: WorkerStats() for spec in specs}
        self.observer = observer  # given to every worker (kew_django.observability)
        self.grace = float(config["SHUTDOWN_GRACE"])
        self.abandoned = False  # the grace ran out with work in flight (see ``join``)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every thread."""
        if self.relay is not None:
            self._spawn("kew-relay", self.relay.run)
        for spec in self.specs:
            assert self.provider is not None  # there are specs
            for n in range(self.concurrency):
                worker = Worker(
                    spec,
                    self.provider,
                    poll_interval=self.poll_interval,
                    stats=self.stats[spec.queue],
                    observer=self.observer,
                )
                self._spawn(f"kew-consume-{spec.queue}-{n}", worker.run)
        drainer = broker_dead_letters_for(self.provider, self.specs)
        if drainer is not None:
            self._spawn("kew-broker-dead-letters", drainer.run)
        ticker = ticker_for_process()  # the @periodic jobs' ticks (docs/periodic.md)
        if ticker is not None:
            self._spawn("kew-periodic", ticker.run)
        queues = ", ".join(s.queue for s in self.specs) or "no queues"
        log.info(
            "kew: started %s%s (%d thread(s) per queue)",
            "the relay and " if self.relay else "",
            queues,
            self.concurrency,
        )

    def _spawn(self, name: str, target: Callable[[threading.Event], object]) -> None:
        def run(stop: threading.Event) -> None:
            try:
                target(stop)
            except Exception:  # the loop below sees the thread gone and ends the process
                log.exception("kew: thread %s died", name)

        thread = threading.Thread(target=run, args=(self.stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def run(self) -> None:
        """Start, log progress until ``stop`` is set, then wait for in-flight work."""
        self.start()
        next_line = time.monotonic() + self.progress_interval
        next_sweep = time.monotonic()
        while not self.stop.wait(0.2):
            if self.progress_interval and time.monotonic() >= next_line:
                self.log_progress()
                next_line += self.progress_interval
            if self.specs and time.monotonic() >= next_sweep:
                self.clear_stopped_workers()
                next_sweep = time.monotonic() + sweep.stale_after().total_seconds()
            dead = [t.name for t in self.threads if not t.is_alive()]
            if dead and not self.stop.is_set():
                self.join()
                raise ComponentDied(
                    f"kew: thread(s) {', '.join(dead)} ended unexpectedly; exiting so that "
                    "the process supervisor restarts this process"
                )
        self.join(self.grace)

    def clear_stopped_workers(self) -> None:
        """Clear the "in progress" rows of dead workers, on this thread's connection."""
        try:
            sweep.sweep()
        except Exception as error:  # noqa: BLE001 - tried again at the next sweep
            log.warning("kew: could not clear the rows of stopped workers: %s", error)
        finally:
            close_db_connections()

    def log_progress(self) -> None:
        """Log one progress line per queue."""
        for queue, stats in self.stats.items():
            log.info(stats.line(queue))

    def join(self, timeout: float | None = None) -> None:
        """Set ``stop`` and wait up to ``timeout`` seconds in all for the work in flight."""
        self.stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        busy = [thread.name for thread in self.threads if thread.is_alive()]
        self.abandoned = bool(busy)
        if busy:
            log.error(
                "kew: %s still busy after the shutdown grace of %.0f s; stopping without "
                "them (their deliveries are not acked and come back)",
                ", ".join(busy),
                timeout,
            )
        self.log_progress()
        log.info("kew: stopped")


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on the first SIGTERM or SIGINT; a second one ends the process at once.

    A signal within ``REPEAT_WINDOW`` seconds of the first is the same request
    sent twice, not a second one: systemd signals every process of the unit
    and a terminal's Ctrl-C the whole process group, while the
    ``--processes`` supervisor forwards its own signal to its children.
    """
    first: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if first and time.monotonic() - first[0] < REPEAT_WINDOW:
            return
        if first:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        first.append(time.monotonic())
        log.warning(
            "kew: %s received; finishing the work in flight (again to quit now)",
            signal.Signals(signum).name,
        )
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
