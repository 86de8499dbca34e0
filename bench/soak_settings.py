"""Settings of the soak script's processes: DATABASE_URL (project.settings) and the provider."""

import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "bench.soak_app",
]
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_SOAK_PROVIDER"]}},
    "RELAY": {"PROGRESS_INTERVAL": 30.0, "POLL_INTERVAL": 0.2, "BACKOFF_MAX": 2.0},
    "CONSUMERS": {"PROGRESS_INTERVAL": 30.0, "POLL_INTERVAL": 0.5},
}
ROOT_URLCONF = "bench.soak_settings"
urlpatterns: list = []
LOGGING = {"version": 1, "disable_existing_loggers": False}
