"""What ``KewConfig.ready()`` does for tasks: consumers for task queues, the admin screen."""

from __future__ import annotations

from django.apps import apps

from kew_django.workers.registry import consumers


def ready() -> None:
    """Register the task queues' consumers and the task results admin, if tasks are available.

    Does nothing when neither ``django.tasks`` (Django 6) nor the
    ``django-tasks`` backport can be imported.
    """
    try:
        # Optional: the tasks modules need django.tasks or the django-tasks backport.
        from kew_django.tasks.worker import register_task_queues
    except ImportError:
        return
    register_task_queues(consumers)
    if apps.is_installed("django.contrib.admin"):
        from django.contrib import admin

        # Only with tasks available (above) and the admin installed.
        from kew_django.tasks.admin import register

        register(admin.site)
