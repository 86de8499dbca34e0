"""System checks of the periodic jobs and of ``KEW["PERIODIC"]`` (registered by ``apps``)."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.core import checks

from kew.errors import ConfigurationError
from kew_django.conf import DEFAULTS
from kew_django.periodic_jobs.registry import periodic_jobs
from kew_django.periodic_jobs.timing import as_interval

SETTINGS_HINT = 'e.g. KEW["PERIODIC"] = {"ENABLED": True, "GRACE": "1m"} (both optional)'


def check_periodic(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report bad jobs (kew.E040-E042) and a bad ``KEW["PERIODIC"]`` (kew.E043)."""
    found: list[checks.CheckMessage] = [
        checks.Error(message, hint=hint, id=check_id)
        for check_id, message, hint in periodic_jobs.problems()
    ]
    found.extend(
        checks.Error(message, hint=SETTINGS_HINT, id="kew.E043") for message in _settings()
    )
    return found


def _settings() -> Iterator[str]:
    config = (getattr(settings, "KEW", None) or {}).get("PERIODIC", {})
    if not isinstance(config, dict):
        yield f'KEW["PERIODIC"] must be a dict, not {type(config).__name__}'
        return
    for key in sorted(set(config) - set(DEFAULTS["PERIODIC"])):
        yield f'unknown KEW["PERIODIC"] key {key!r}'
    if not isinstance(config.get("ENABLED", True), bool):
        yield 'KEW["PERIODIC"]["ENABLED"] must be True or False'
    try:
        as_interval(config.get("GRACE", "1m"), 'KEW["PERIODIC"]["GRACE"]')
    except ConfigurationError as error:
        yield str(error)
