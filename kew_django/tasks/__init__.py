"""Django tasks through Kew: ``"BACKEND": "kew_django.tasks.KewTaskBackend"`` in ``TASKS``.

- ``backend``: ``KewTaskBackend``, enqueue in the caller's transaction (an outbox row);
- ``task``: ``KewTask``, a task with its own retry schedule;
- ``worker``: run each attempt, retry it on its schedule, dead-letter it at the end;
- ``results``: the stored ``TaskResultRecord`` as Django's ``TaskResult``;
- ``compat``: ``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2.
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
