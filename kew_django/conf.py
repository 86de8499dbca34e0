"""The ``KEW`` setting, with defaults filled in."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, dict[str, Any]] = {
    "PROVIDERS": {"default": {"URL": "database://"}},
    "RELAY": {
        "BATCH_SIZE": 500,  # rows claimed and published per broker confirmation
        "POLL_INTERVAL": 1.0,  # seconds between claims when LISTEN/NOTIFY is unavailable
        "MAX_ATTEMPTS": 5,  # broker rejections before a row is marked FAILED
        "RETENTION": "7d",  # sent rows older than this are purged
        "PROGRESS_INTERVAL": 60.0,  # seconds between progress lines
        "BACKOFF_MAX": 30.0,  # longest wait while the broker is unreachable
    },
    "CONSUMERS": {
        "CONCURRENCY": 1,  # worker threads per queue
        "POLL_INTERVAL": 1.0,  # longest wait in one receive()
        "PROGRESS_INTERVAL": 60.0,
        "BROKER_DEAD_LETTERS": "DLQ",  # the broker's dead-letter queue to drain (None: off)
        "HEARTBEAT": 5.0,  # seconds between a running handler's beats (lease/3 at most)
        "MAX_CRASHES": 3,  # a message whose worker died more often than this is given up
        "RETRY": "10s 1m 10m",  # the retry schedule of an @consumer that names none
        "SHUTDOWN_GRACE": 25.0,  # seconds handlers get to finish after SIGTERM (docs/robustness.md)
        "BATCH_SIZE": 32,  # deliveries in hand handled in one transaction (1: off; workers.batch)
        "BATCH_TIME": 0.05,  # seconds after which a batch's transaction starts no more handlers
        "LIMIT_LEASE": 30.0,  # seconds a dead worker's limit slot stays held (kew_django.limits)
    },
    "LIMITS": {},  # limits by name: {"imports": {"CONCURRENCY": 4, "PER_KEY": 1, "RATE": 20}}
    "OBSERVABILITY": {  # see docs/operations.md
        "PORT": None,  # /metrics, /healthz, /readyz of kew_relay/kew_consume/kew_run (None: off)
        "ADDRESS": "127.0.0.1",  # where that port listens ("0.0.0.0" in a container)
        "TOKEN": "",  # lets a non-staff scraper read the web view (Authorization: Bearer ...)
        "TRACING": True,  # OpenTelemetry spans, when its API is installed
        "LIVENESS_TIMEOUT": 120.0,  # seconds a loop may go without turning before /healthz fails
        "RECORD_INTERVAL": 15.0,  # seconds between writes of the process's KewProcess row
        "READY_CACHE": 1.0,  # seconds a /readyz answer is reused (a burst of probes checks once)
    },
    "PERIODIC": {"ENABLED": True, "GRACE": "1m"},  # ticker on/off; a later tick is missed
    "OUTBOX": {  # see docs/guarantees.md#publishing-on-commit
        "PUBLISH_ON_COMMIT": False,  # True, or a list of queues: the sender publishes after commit
        "GRACE": 5.0,  # seconds the relay leaves such a row to its sender before taking it
    },
}


def kew_settings() -> dict[str, Any]:
    """Return the KEW setting merged over the defaults, one level deep."""
    user = getattr(settings, "KEW", {}) or {}
    merged = {key: dict(value) for key, value in DEFAULTS.items()}
    for key, value in user.items():
        if key == "PROVIDERS" or not isinstance(value, dict):
            merged[key] = value
        else:
            merged.setdefault(key, {}).update(value)
    return merged


def section(name: str) -> dict[str, Any]:
    """Return one section of the KEW setting (RELAY, CONSUMERS, PROVIDERS, OUTBOX, ...)."""
    value = kew_settings().get(name)
    return value if isinstance(value, dict) else dict(DEFAULTS[name])
