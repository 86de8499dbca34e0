"""Settings of every peer-bench process: DATABASE_URL and KEW_BROKER_URL from the environment.

The project's settings (django-environ) read both; this only swaps the
apps for the kew app and the bench's one table.
"""

import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "kew_django",
    "bench.peers.app.apps.PeersConfig",
]
KEW = {
    **KEW,  # noqa: F405
    "RELAY": {"PROGRESS_INTERVAL": 3600.0},
    "CONSUMERS": {"PROGRESS_INTERVAL": 3600.0},
    # kew-*-oncommit (bench/peers.py): the sender publishes after its commit, the relay backs it.
    "OUTBOX": {"PUBLISH_ON_COMMIT": os.environ.get("PEERS_ONCOMMIT") == "1"},
}
if os.environ.get("PEERS_PREPARE") == "1":  # let Kew prepare its lease (Django's default: off)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5  # noqa: F405
ROOT_URLCONF = "bench.peers.settings"
urlpatterns: list = []
