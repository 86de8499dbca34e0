"""Settings for the limit tests' kew_consume processes: the test database, the database provider."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.kew_django.limits.app",
]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_TEST_PROVIDER_URL"]}},
    "CONSUMERS": {
        "POLL_INTERVAL": 0.2,
        "BROKER_DEAD_LETTERS": None,
        "HEARTBEAT": float(os.environ.get("KEW_TEST_HEARTBEAT", "5")),
        "LIMIT_LEASE": float(os.environ.get("KEW_TEST_LIMIT_LEASE", "30")),
    },
}
ROOT_URLCONF = "tests.kew_django.limits.settings"
urlpatterns: list = []
