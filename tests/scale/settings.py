"""Settings of the scale-out tests' processes: a database and a broker URL from the environment.

``KEW_SCALE_DB`` is a JSON ``DATABASES["default"]``, ``KEW_SCALE_BROKER`` the
provider URL (a cluster's failover list, ``database://``, ...).
"""

import json
import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "tests.scale.app.apps.ScaleConfig",
]
DATABASES = {"default": json.loads(os.environ["KEW_SCALE_DB"])}
KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_SCALE_BROKER"]}},
    "RELAY": {"PROGRESS_INTERVAL": 1.0, "POLL_INTERVAL": 0.1, "BACKOFF_MAX": 2.0},
    "CONSUMERS": {"PROGRESS_INTERVAL": 1.0, "POLL_INTERVAL": 0.2},
}
ROOT_URLCONF = "tests.scale.settings"
urlpatterns: list = []
