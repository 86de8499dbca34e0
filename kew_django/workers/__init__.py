"""Consumer workers: the ``@consumer`` registry and the loop that runs each handler.

- ``registry``: ``@consumer`` declarations and the registry they fill;
- ``worker``: run a queue's handler on each delivery (ack, retry, dead letter);
- ``deadletters``: write a dead letter for a message a consumer gave up on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kew_django.lazy import lazy_exports

if TYPE_CHECKING:
    from kew_django.workers.registry import ConsumerRegistry, ConsumerSpec, consumer
    from kew_django.workers.worker import DeliveryOutcome, Worker, WorkerStats

__all__ = [
    "ConsumerRegistry",
    "ConsumerSpec",
    "DeliveryOutcome",
    "Worker",
    "WorkerStats",
    "consumer",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ConsumerRegistry": "kew_django.workers.registry",
        "ConsumerSpec": "kew_django.workers.registry",
        "consumer": "kew_django.workers.registry",
        "DeliveryOutcome": "kew_django.workers.worker",
        "Worker": "kew_django.workers.worker",
        "WorkerStats": "kew_django.workers.worker",
    },
)
