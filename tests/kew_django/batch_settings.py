"""Settings of the group-commit crash tests' kew_consume: the test database, the env's provider."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.kew_django.batch_app",
]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_TEST_PROVIDER_URL"]}},
    "CONSUMERS": {
        "POLL_INTERVAL": 0.2,
        "BROKER_DEAD_LETTERS": None,
        "BATCH_SIZE": 20,
        "BATCH_TIME": 5.0,  # one batch for what is in hand, however slow the machine
    },
}
ROOT_URLCONF = "tests.kew_django.batch_settings"
urlpatterns: list = []
