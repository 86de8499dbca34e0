"""System check of KEW["OBSERVABILITY"] (kew.E009)."""

from __future__ import annotations

from django.core import checks

from kew_django.conf import DEFAULTS, kew_settings

NUMBERS = ("LIVENESS_TIMEOUT", "RECORD_INTERVAL")


def check_observability(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check the keys and values of KEW['OBSERVABILITY']."""
    config = kew_settings().get("OBSERVABILITY")
    if not isinstance(config, dict):
        return [checks.Error("KEW['OBSERVABILITY'] must be a dict", id="kew.E009")]
    known = DEFAULTS["OBSERVABILITY"]
    errors = []
    for key, value in config.items():
        where = f"KEW['OBSERVABILITY'][{key!r}]"
        if key not in known:
            errors.append(f"unknown setting {where} (known: {', '.join(known)})")
        elif key == "PORT" and value is not None and not _port(value):
            errors.append(f"{where} must be None or a port number 0-65535, not {value!r}")
        elif key in NUMBERS and (not isinstance(value, int | float) or value <= 0):
            errors.append(f"{where} must be a positive number, not {value!r}")
        elif key == "READY_CACHE" and (
            not isinstance(value, int | float) or isinstance(value, bool) or value < 0
        ):
            errors.append(f"{where} must be a number of seconds, 0 or more, not {value!r}")
        elif key in ("ADDRESS", "TOKEN") and not isinstance(value, str):
            errors.append(f"{where} must be a string, not {value!r}")
    return [checks.Error(text, id="kew.E009") for text in errors]


def _port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535
