"""Kew for Django: a transactional outbox, a relay, consumer workers and dead letters.

    from kew_django import Channel, consumer, PermanentError, RepeatAction, Work, Cancelled

Names are imported lazily, so importing ``kew_django`` loads no models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kew_django.lazy import lazy_exports

if TYPE_CHECKING:
    from kew.schedule import RepeatAction
    from kew_django.errors import KewImproperlyConfigured, PermanentError
    from kew_django.outbox import Channel
    from kew_django.periodic_jobs import periodic
    from kew_django.providers import get_provider
    from kew_django.topics import Topic, subscriber
    from kew_django.workers.progress import Cancelled, Interrupted, Work
    from kew_django.workers.registry import ConsumerRegistry, ConsumerSpec, consumer

__all__ = [
    "Cancelled",
    "Channel",
    "Interrupted",
    "ConsumerRegistry",
    "ConsumerSpec",
    "KewImproperlyConfigured",
    "PermanentError",
    "RepeatAction",
    "Topic",
    "Work",
    "consumer",
    "get_provider",
    "periodic",
    "subscriber",
]

if not TYPE_CHECKING:  # type checkers see the imports above; unknown names are errors
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "Cancelled": "kew_django.workers.progress",
            "Channel": "kew_django.outbox",
            "Interrupted": "kew_django.workers.progress",
            "Work": "kew_django.workers.progress",
            "consumer": "kew_django.workers.registry",
            "ConsumerRegistry": "kew_django.workers.registry",
            "ConsumerSpec": "kew_django.workers.registry",
            "PermanentError": "kew_django.errors",
            "KewImproperlyConfigured": "kew_django.errors",
            "RepeatAction": "kew.schedule",
            "get_provider": "kew_django.providers",
            "periodic": "kew_django.periodic_jobs",
            **dict.fromkeys(["Topic", "subscriber"], "kew_django.topics"),
        },
    )
