"""What ``KewConfig.ready()`` does for tasks: consumers for task queues, the admin screen."""

from __future__ import annotations

from django.apps import AppConfig, apps


def ready(config: AppConfig) -> None:
    """Register the task queues' consumers and the task results admin, if tasks are available.

    Does nothing when neither ``django.tasks`` (Django 6) nor the
    ``django-tasks`` backport can be imported.
    """
    try:
        from kew_django.tasks.worker import register_task_queues
    except ImportError:
        return
    register_task_queues(config.registry)  # type: ignore[attr-defined]
    if apps.is_installed("django.contrib.admin"):
        from django.contrib import admin

        from kew_django.tasks.admin import register

        register(admin.site)
