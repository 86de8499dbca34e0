"""System checks for ``KEW["OUTBOX"]`` (publishing on commit)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from kew_django.conf import DEFAULTS
from kew_django.outbox.oncommit import valid_grace
from kew_django.providers import _hint

WHERE = "KEW['OUTBOX']"
DOCS = "See docs/guarantees.md#publishing-on-commit."


def check_outbox(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check the keys and values of ``KEW["OUTBOX"]``."""
    kew = getattr(settings, "KEW", None) or {}
    config = kew.get("OUTBOX", {}) if isinstance(kew, dict) else {}  # else kew.E001
    if not isinstance(config, dict):
        return [_error(f"{WHERE} must be a dict, not {type(config).__name__}", _example())]
    errors: list[checks.CheckMessage] = [
        _error(
            f"unknown setting {WHERE}[{key!r}]",
            f"Known: {', '.join(DEFAULTS['OUTBOX'])}{_hint(key, DEFAULTS['OUTBOX'])}",
        )
        for key in config
        if key not in DEFAULTS["OUTBOX"]
    ]
    if "PUBLISH_ON_COMMIT" in config and not _queues_or_bool(config["PUBLISH_ON_COMMIT"]):
        errors.append(
            _error(
                f"{WHERE}['PUBLISH_ON_COMMIT'] must be True, False or a list of queue names, "
                f"not {config['PUBLISH_ON_COMMIT']!r}",
                "True publishes every eligible row from its sender after the commit; a list "
                "limits that to those queues (leave out the queues whose order matters). " + DOCS,
            )
        )
    if "GRACE" in config and not valid_grace(config["GRACE"]):
        errors.append(
            _error(
                f"{WHERE}['GRACE'] must be a positive number of seconds, not {config['GRACE']!r}",
                "e.g. 5.0 (the default): how long the relay leaves a row to its sender. " + DOCS,
            )
        )
    return errors


def _queues_or_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list | tuple | set | frozenset) and all(
        isinstance(queue, str) and queue for queue in value
    )


def _example() -> str:
    return f"e.g. {WHERE} = {DEFAULTS['OUTBOX']!r} (every key is optional). {DOCS}"


def _error(message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, id="kew.E050")
