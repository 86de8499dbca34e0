"""Settings of the soak script's processes: its database and provider come from the environment."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "bench.soak_app",
]
if "KEW_SOAK_DB" in os.environ:  # PostgreSQL; without it, project.settings' SQLite DATABASES
    DATABASES = {"default": json.loads(os.environ["KEW_SOAK_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_SOAK_PROVIDER"]}},
    "RELAY": {"PROGRESS_INTERVAL": 30.0, "POLL_INTERVAL": 0.2, "BACKOFF_MAX": 2.0},
    "CONSUMERS": {"PROGRESS_INTERVAL": 30.0, "POLL_INTERVAL": 0.5},
}
ROOT_URLCONF = "bench.soak_settings"
urlpatterns: list = []
LOGGING = {"version": 1, "disable_existing_loggers": False}
