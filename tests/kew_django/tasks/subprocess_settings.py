"""Settings for kew_consume run by the task tests: the test database, a provider from the env."""

import os

from tests.kew_django.subprocess_settings import *  # noqa: F403

KEW = {
    "PROVIDERS": {"default": {"URL": os.environ["KEW_TEST_BROKER_URL"]}},
    "CONSUMERS": {"PROGRESS_INTERVAL": 1.0, "POLL_INTERVAL": 0.2},
}
