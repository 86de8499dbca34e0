"""Settings for manage.py run by the SIGTERM tests: the test database, the database provider."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.kew_django.sigterm_app",
]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ.get("KEW_TEST_BROKER_URL", "database://")}},
    "RELAY": {"PROGRESS_INTERVAL": 1.0, "POLL_INTERVAL": 0.1},
    "CONSUMERS": {
        "PROGRESS_INTERVAL": 1.0,
        "POLL_INTERVAL": 0.2,
        "HEARTBEAT": float(os.environ.get("KEW_TEST_HEARTBEAT", "5")),
        "SHUTDOWN_GRACE": float(os.environ.get("KEW_TEST_GRACE", "25")),
    },
}
ROOT_URLCONF = "tests.kew_django.subprocess_settings"
urlpatterns: list = []
