"""Settings of the child process that dies right after its commit (publishing on commit)."""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "kew_django"]
DATABASES = {"default": json.loads(os.environ["KEW_TEST_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_TEST_BROKER_URL"]}},
    "OUTBOX": {"PUBLISH_ON_COMMIT": True, "GRACE": float(os.environ["KEW_TEST_ONCOMMIT_GRACE"])},
}
ROOT_URLCONF = "tests.kew_django.outbox.oncommit_settings"
urlpatterns: list = []
