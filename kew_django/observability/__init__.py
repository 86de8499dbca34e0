"""Observability of Kew's processes: Prometheus metrics, OpenTelemetry traces, health.

``Observability`` is what one long-running command (kew_relay,
kew_consume, kew_run) sets up: the observer its relay and workers call,
the ``/metrics`` ``/healthz`` ``/readyz`` server when a port is given,
and its process record for ``kew_status``. Metrics need
``prometheus_client`` and traces the OpenTelemetry API; without them
the rest works (``/metrics`` says what to install). See docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError

from kew.errors import ConfigurationError
from kew.providers.base import Provider
from kew_django.conf import section
from kew_django.observability import tracing
from kew_django.observability.health import HealthServer, Liveness
from kew_django.observability.observer import NO_OBSERVER, Observer, Observers
from kew_django.outbox.committed import commit_publishers

__all__ = ["NO_OBSERVER", "Observability", "Observer", "Observers", "metrics_available", "observed"]

log = logging.getLogger(__name__)


def metrics_available() -> bool:
    """Return whether ``prometheus_client`` is installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class Observability:
    """The observer, health server and process record of one process; ``start`` then ``close``.

    ``port`` (or ``KEW["OBSERVABILITY"]["PORT"]``; 0 picks a free one, see
    ``port`` after ``start``) turns on metrics and the health server;
    ``record=False`` leaves no ``KewProcess`` row (tests, ``--once``).
    """

    def __init__(
        self,
        *,
        kind: str,
        queues: list[str],
        provider: Provider | None,
        port: int | None = None,
        record: bool = True,
        using: str = "default",
    ):
        # The package loads before the models do (Channel imports its tracing).
        from kew_django.observability.processes import ProcessRecord

        config = section("OBSERVABILITY")
        port = config.get("PORT") if port is None else port
        if port is not None and (not isinstance(port, int) or not 0 <= port <= 65535):
            raise ConfigurationError(f"a metrics port is a number from 0 to 65535, not {port!r}")
        system = tracing.messaging_system(provider) if provider is not None else "kew"
        self.liveness = Liveness(timeout=float(config["LIVENESS_TIMEOUT"]))
        parts: list[Observer] = [self.liveness]
        registry: Any = None
        self.metrics: Any = None
        if port is not None and metrics_available():
            # Needs prometheus_client, an optional dependency (metrics_available).
            from kew_django.observability.metrics import DatabaseCollector, Metrics

            self.metrics = Metrics(system=system)
            self.metrics.registry.register(DatabaseCollector(using))
            registry = self.metrics.registry
            parts.append(self.metrics)
        elif port is not None:
            log.warning("kew: no metrics on /metrics: pip install 'kew[metrics]'")
        if config.get("TRACING", True) and tracing.available():
            parts.append(tracing.Tracing(system=system))
        self.observer: Observer = Observers(parts)
        self.server = None
        if port is not None:
            address = str(config.get("ADDRESS") or "127.0.0.1")
            try:
                self.server = HealthServer(
                    port=int(port),
                    address=address,
                    liveness=self.liveness,
                    provider=provider,
                    registry=registry,
                    using=using,
                    ready_cache=float(config["READY_CACHE"]),
                )
            except OSError as error:
                where = f"{address}:{port}"
                raise ConfigurationError(f"cannot serve metrics on {where}: {error}") from None
        self.record = (
            ProcessRecord(
                kind=kind,
                queues=queues,
                interval=float(config["RECORD_INTERVAL"]),
                in_progress=lambda: dict(self.liveness.in_progress),
            )
            if record
            else None
        )

    @property
    def port(self) -> int | None:
        """Return the port of /metrics /healthz /readyz (None: not served)."""
        return self.server.port if self.server is not None else None

    def start(self) -> Observability:
        """Start the health server and the process record; return self."""
        if self.server is not None:
            self.server.start()
            log.info("kew: /metrics /healthz /readyz on port %d", self.server.port)
        if self.record is not None:
            self.record.start()
        commit_publishers.observer = self.observer  # what this process publishes on commit
        return self

    def close(self) -> None:
        """Stop serving and remove the process record."""
        if commit_publishers.observer is self.observer:
            commit_publishers.observer = None
        if self.server is not None:
            self.server.close()
        if self.record is not None:
            self.record.close()


@contextmanager
def observed(runner: Any, kind: str, port: int | None) -> Iterator[Observability]:
    """Give ``runner`` (and its relay) an observer, a health server and a process record."""
    queues = [spec.queue for spec in runner.specs]
    provider = runner.provider or (runner.relay.provider if runner.relay else None)
    try:
        observability = Observability(kind=kind, queues=queues, provider=provider, port=port)
    except ConfigurationError as error:
        raise CommandError(str(error)) from None
    runner.observer = observability.observer
    if runner.relay is not None:
        runner.relay.observer = observability.observer
    observability.start()
    try:
        yield observability
    finally:
        observability.close()
