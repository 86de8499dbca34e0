"""The kew_django app configuration."""

from django.apps import AppConfig


class KewConfig(AppConfig):
    """Kew's Django app: outbox, database provider, relay, consumers, admin."""

    name = "kew_django"
    verbose_name = "Kew messaging"
    default_auto_field = "django.db.models.BigAutoField"
