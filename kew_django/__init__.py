"""Kew for Django: a transactional outbox, a relay, consumer workers and dead letters.

    from kew_django import Channel, consumer, PermanentError

Names are imported lazily, so importing ``kew_django`` loads no models.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Channel": "kew_django.channels",
    "consumer": "kew_django.consumers",
    "ConsumerRegistry": "kew_django.consumers",
    "ConsumerSpec": "kew_django.consumers",
    "PermanentError": "kew_django.errors",
    "KewImproperlyConfigured": "kew_django.errors",
    "get_provider": "kew_django.providers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kew_django' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return __all__
