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
    """Return one section of the KEW setting (RELAY, CONSUMERS, PROVIDERS)."""
    value = kew_settings().get(name)
    return value if isinstance(value, dict) else dict(DEFAULTS[name])
