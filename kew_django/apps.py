"""The kew_django app configuration: it wires, it holds nothing.

The shared objects are module-level handlers: ``kew_django.providers.providers``
and ``kew_django.workers.registry.consumers``.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from kew_django.checks import check_broker_reachable, check_consumers, check_settings
from kew_django.limits.checks import check_limits
from kew_django.observability.checks import check_observability
from kew_django.outbox.checks import check_outbox
from kew_django.outbox.committed import commit_publishers
from kew_django.periodic_jobs.checks import check_periodic
from kew_django.tasks import hooks
from kew_django.topics import check_topics


class KewConfig(AppConfig):
    """Kew's Django app: outbox, database provider, relay, consumers, admin."""

    name = "kew_django"
    verbose_name = "Kew messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register checks, import apps' ``consumers`` and ``periodic`` modules, add task queues."""
        for check in (
            check_settings,
            check_consumers,
            check_observability,
            check_periodic,
            check_topics,
            check_limits,
            check_outbox,
        ):
            checks.register(check, "kew")
        checks.register(check_broker_reachable, "kew", deploy=True)
        autodiscover_modules("consumers")
        autodiscover_modules("periodic")  # @periodic jobs of tasks declared elsewhere
        hooks.ready()  # task queues beside the @consumer ones
        from kew_django.relay.senders import sender_relay  # it needs the models, loaded now

        commit_publishers.relays = sender_relay  # publishing on commit (outbox.committed)
