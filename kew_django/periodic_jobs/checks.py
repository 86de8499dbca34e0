"""The system check of the declared periodic jobs (registered by ``apps``)."""

from __future__ import annotations

from django.core import checks

from kew_django.periodic_jobs.registry import periodic_jobs


def check_periodic(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report bad ``every``/``cron``/``catch_up`` (E040), time zones (E041), names twice (E042)."""
    return [
        checks.Error(message, hint=hint, id=check_id)
        for check_id, message, hint in periodic_jobs.problems()
    ]
