"""Django tasks through Kew: ``"BACKEND": "kew_django.tasks.KewTaskBackend"`` in ``TASKS``.

``KewTaskBackend`` enqueues in the caller's transaction; ``KewTask`` is a task
with its own retry schedule (``@task(retry="10s 1m")``). How tasks run, retry
and fail: ``docs/tasks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kew_django.lazy import lazy_exports

if TYPE_CHECKING:
    from kew_django.tasks.backend import KewTaskBackend
    from kew_django.tasks.task import KewTask

__all__ = ["KewTask", "KewTaskBackend"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"KewTaskBackend": "kew_django.tasks.backend", "KewTask": "kew_django.tasks.task"},
)
