"""Liveness, readiness and ``/metrics`` on one small HTTP server thread.

``HealthServer`` answers ``/healthz`` from a ``Liveness`` observer,
``/readyz`` by checking the database and the provider, and ``/metrics``
from a Prometheus registry. What each answers: docs/operations.md#health.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.db import connections

from kew.providers.base import Provider
from kew.qchan.observe import Handling
from kew_django.db.connections import close_db_connections
from kew_django.observability.observer import Observer

log = logging.getLogger(__name__)


class Liveness(Observer):
    """Remember when each loop thread last turned, and whether it is handling a delivery.

    A thread busy with a delivery counts as alive however long its handler
    runs. NOTE: so a handler stuck for ever is not detected here; the
    database provider's lease, or a restart, brings its message back.
    """

    def __init__(self, *, timeout: float = 120.0):
        self.timeout = timeout
        self._turned: dict[str, float] = {}
        self._busy: dict[str, int] = {}
        self.in_progress: dict[str, int] = {}  # queue -> deliveries in hand now

    def _beat(self) -> None:
        self._turned[threading.current_thread().name] = time.monotonic()

    def turned(self, queue: str) -> None:
        self._beat()

    def relay_turned(self) -> None:
        self._beat()

    def handling(self, seen: Handling) -> Any:
        return _Busy(self, threading.current_thread().name, seen.queue)

    def stale(self) -> list[str]:
        """Return the loops (thread names) that have not turned within ``timeout``."""
        now = time.monotonic()
        return sorted(
            name
            for name, at in list(self._turned.items())
            if now - at > self.timeout and not self._busy.get(name)
        )


class _Busy:
    """Count a delivery in hand for its thread and queue (each key is one thread's, or locked)."""

    lock = threading.Lock()

    def __init__(self, liveness: Liveness, name: str, queue: str):
        self.liveness, self.name, self.queue = liveness, name, queue

    def __enter__(self) -> None:
        busy, counts = self.liveness._busy, self.liveness.in_progress
        busy[self.name] = busy.get(self.name, 0) + 1
        with self.lock:  # several threads share a queue
            counts[self.queue] = counts.get(self.queue, 0) + 1

    def __exit__(self, *exc: object) -> None:
        self.liveness._busy[self.name] -= 1
        with self.lock:
            self.liveness.in_progress[self.queue] -= 1


def readiness(provider: Provider | None, using: str = "default") -> str | None:
    """Return why the process is not ready (database or provider unreachable), or None."""
    try:
        try:
            with connections[using].cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as error:  # noqa: BLE001 - any failure means not ready
            return f"database {using!r} unreachable: {error}"
        if provider is not None:
            try:
                provider.producer().close()
            except Exception as error:  # noqa: BLE001
                return f"provider unreachable: {error}"
        return None
    finally:
        close_db_connections()


class CachedReadiness:
    """Answer readiness at most once per ``ttl`` seconds; concurrent askers share one check."""

    def __init__(self, check: Callable[[], str | None], ttl: float):
        self.check, self.ttl = check, ttl
        self.lock = threading.Lock()
        self.answer: str | None = None
        self.checked_at = -math.inf

    def __call__(self) -> str | None:
        with self.lock:  # one check at a time: a burst of probes opens one connection
            if time.monotonic() - self.checked_at >= self.ttl:
                self.answer = self.check()
                self.checked_at = time.monotonic()
            return self.answer


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that answers 503 at once past ``max_threads`` requests in flight."""

    daemon_threads = True
    BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self, address: tuple[str, int], handler: Any, *, max_threads: int):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_threads)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):  # the client left: nothing to tell it
                request.sendall(self.BUSY)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class HealthServer:
    """Serve /healthz, /readyz and /metrics for one process, on a daemon thread.

    At most ``max_threads`` requests are served at once (more get 503 at
    once), a client has ``CLIENT_TIMEOUT`` seconds to send its request, and
    /readyz's database and broker check runs at most once per ``ready_cache``
    seconds.
    """

    CLIENT_TIMEOUT = 5.0

    def __init__(
        self,
        *,
        port: int,
        address: str = "127.0.0.1",
        liveness: Liveness,
        provider: Provider | None = None,
        registry: Any = None,
        using: str = "default",
        ready_cache: float = 1.0,
        max_threads: int = 4,
    ):
        self.liveness, self.provider, self.registry = liveness, provider, registry
        self.using = using
        self.readiness = CachedReadiness(lambda: readiness(provider, using), ready_cache)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = self.CLIENT_TIMEOUT  # a client that sends nothing frees its thread

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                status, kind, body = owner.answer(self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

        self.server = BoundedHTTPServer((address, port), Handler, max_threads=max_threads)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="kew-health", daemon=True
        )

    def start(self) -> HealthServer:
        """Start serving; return self."""
        self.thread.start()
        return self

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """Return (status, content type, body) for a GET of ``path``."""
        if path == "/healthz":
            stale = self.liveness.stale()
            return _json(503 if stale else 200, {"live": not stale, "stale": stale})
        if path == "/readyz":
            reason = self.readiness()
            return _json(503 if reason else 200, {"ready": reason is None, "reason": reason})
        if path == "/metrics":
            if self.registry is None:
                text = b"metrics need prometheus_client: pip install 'kew[metrics]'\n"
                return 501, "text/plain; charset=utf-8", text
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz, /readyz\n"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()
