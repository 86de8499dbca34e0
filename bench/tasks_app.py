"""Settings and tasks for bench/tasks.py: the project, plus django-tasks-db beside Kew."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, TASKS

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
TASKS = {
    **TASKS,
    "default": {**TASKS["default"], "QUEUES": ["default", "bench"]},
    "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["bench"]},
}
