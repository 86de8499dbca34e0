"""Settings for the crash-loop tests' kew_consume: the test database, a provider from the env."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.kew_django.crash_app",
]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_TEST_PROVIDER_URL"]}},
    "CONSUMERS": {"POLL_INTERVAL": 0.2, "MAX_CRASHES": 2, "BROKER_DEAD_LETTERS": None},
}
ROOT_URLCONF = "tests.kew_django.crash_settings"
urlpatterns: list = []
