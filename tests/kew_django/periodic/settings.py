"""Settings of the ``kew_run`` processes of the periodic job tests: the test database."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.kew_django.periodic.tick_app",
]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    # Through the outbox: its sent rows are the record of every tick the test counts
    # (a direct send's queue row is gone once consumed).
    "PROVIDERS": {"default": {"URL": "database://?direct=false"}},
    "RELAY": {"POLL_INTERVAL": 0.2},
    "CONSUMERS": {"POLL_INTERVAL": 0.2, "SHUTDOWN_GRACE": 5.0},
}
ROOT_URLCONF = "tests.kew_django.periodic.settings"
urlpatterns: list = []
