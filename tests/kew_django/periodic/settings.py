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
    "PROVIDERS": {"default": {"URL": "database://"}},
    "RELAY": {"POLL_INTERVAL": 0.2},
    "CONSUMERS": {"POLL_INTERVAL": 0.2, "SHUTDOWN_GRACE": 5.0},
}
ROOT_URLCONF = "tests.kew_django.periodic.settings"
urlpatterns: list = []
