"""``KewTask``: Django's Task with a Kew retry schedule of its own."""

from __future__ import annotations

from dataclasses import dataclass

from kew_django.tasks.compat import Task


@dataclass(frozen=True, slots=True, kw_only=True)
class KewTask(Task):
    """A task that may carry its own retry schedule: ``@task(retry="10s 1m 1h")``.

    The task decorator passes extra options to the backend's ``task_class``
    (Django 6.1, and the django-tasks backport). Without ``retry`` the
    backend's ``OPTIONS["RETRY"]`` applies; ``retry=""`` means no retries.
    """

    retry: str | None = None
