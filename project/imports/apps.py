"""The imports app configuration."""

from django.apps import AppConfig


class ImportsConfig(AppConfig):
    """Imports requested over HTTP, run by a consumer, reported by e-mail."""

    name = "project.imports"
    label = "imports"
    verbose_name = "Imports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from project.imports import checks  # noqa: F401 - registers the system checks
