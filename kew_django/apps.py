"""The kew_django app configuration."""

from __future__ import annotations

from typing import cast

from django.apps import AppConfig, apps
from django.utils.module_loading import autodiscover_modules


class KewConfig(AppConfig):
    """Kew's Django app: outbox, database provider, relay, consumers, admin.

    ``registry`` holds the consumers found in each installed app's
    ``consumers.py``; ``providers`` the providers named in ``KEW``.
    """

    name = "kew_django"
    verbose_name = "Kew messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        from kew_django.providers import ProviderHandler
        from kew_django.workers.registry import ConsumerRegistry

        self.registry = ConsumerRegistry()
        self.providers = ProviderHandler()

    def ready(self) -> None:
        from kew_django import checks  # noqa: F401 - registers the system checks
        from kew_django.observability import checks as _  # noqa: F401 - and KEW["OBSERVABILITY"]'s

        autodiscover_modules("consumers")

        from kew_django.tasks import hooks

        hooks.ready(self)  # task queues beside @consumer ones


def kew_config() -> KewConfig:
    """Return the installed kew_django app config (its ``registry`` and ``providers``)."""
    return cast(KewConfig, apps.get_app_config("kew_django"))  # the label is always ours
