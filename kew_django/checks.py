"""System checks for the KEW setting and the registered consumers (registered by ``apps``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.db import connections
from django.utils.module_loading import import_string

from kew.providers import redact
from kew.schedule import as_schedule, parse_interval
from kew_django.conf import DEFAULTS, kew_settings
from kew_django.providers import (
    KNOWN_BACKENDS,
    ProviderNotConfigured,
    _hint,
    build_provider,
    known_schemes,
)
from kew_django.workers.registry import consumers


def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check the shape of KEW and each provider entry."""
    config = getattr(settings, "KEW", {})
    if not isinstance(config, dict):
        return [checks.Error("KEW must be a dict", hint="See docs/django.md.", id="kew.E001")]
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"unknown KEW key {key!r}",
            hint=f"Known keys: {', '.join(DEFAULTS)}{_hint(key, DEFAULTS)}",
            id="kew.E001",
        )
        for key in config
        if key not in DEFAULTS
    ]
    for name in ("RELAY", "CONSUMERS"):
        if name in config and not isinstance(config[name], dict):
            errors.append(
                checks.Error(
                    f"KEW[{name!r}] must be a dict, not {type(config[name]).__name__}",
                    hint=f"e.g. KEW[{name!r}] = {DEFAULTS[name]!r} (every key is optional)",
                    id="kew.E001",
                )
            )
    providers = kew_settings()["PROVIDERS"]
    if not isinstance(providers, dict) or "default" not in providers:
        errors.append(
            checks.Error(
                "KEW['PROVIDERS'] needs a 'default' entry",
                hint="e.g. {'default': {'URL': env('KEW_BROKER_URL', default='database://')}}",
                id="kew.E001",
            )
        )
        return errors
    for alias, entry in providers.items():
        errors.extend(_check_provider(alias, entry))
    return errors + _check_options() + _check_batch_size()


GRACE_HINT = (
    "Seconds a worker gives its handlers after SIGTERM, e.g. 25.0 (the default): a few "
    "seconds less than Kubernetes' terminationGracePeriodSeconds (30) or systemd's "
    "TimeoutStopSec, so that the process exits before it is killed."
)


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_options() -> list[checks.CheckMessage]:
    """Check the numbers and intervals of KEW['RELAY'] and KEW['CONSUMERS']."""
    errors: list[checks.CheckMessage] = []
    config = kew_settings()
    for name in ("RELAY", "CONSUMERS"):
        if not isinstance(config[name], dict):
            continue  # reported as kew.E001
        for key, value in config[name].items():
            where = f"KEW[{name!r}][{key!r}]"
            if key not in DEFAULTS[name]:
                errors.append(
                    checks.Error(
                        f"unknown setting {where}",
                        hint=f"Known: {', '.join(DEFAULTS[name])}{_hint(key, DEFAULTS[name])}",
                        id="kew.E007",
                    )
                )
            elif key == "BROKER_DEAD_LETTERS":
                if value is not None and (not isinstance(value, str) or not value):
                    errors.append(
                        checks.Error(
                            f"{where} must name a queue or be None, not {value!r}",
                            hint="e.g. 'DLQ', the dead-letter address of Artemis's broker.xml",
                            id="kew.E007",
                        )
                    )
            elif key == "MAX_CRASHES":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    errors.append(
                        checks.Error(
                            f"{where} must be a whole number of at least 1, not {value!r}",
                            hint="One crash or one deploy must never dead-letter a message: "
                            "e.g. 3 (the default). It must stay below the broker's own "
                            "redelivery limit (Artemis max-delivery-attempts, 10).",
                            id="kew.E007",
                        )
                    )
            elif key == "RETRY":
                try:
                    as_schedule(value)
                except Exception:
                    errors.append(
                        checks.Error(
                            f"{where} is not a retry schedule: {value!r}",
                            hint="Write intervals as a number and a unit, e.g. '10s 1m 10m'.",
                            id="kew.E007",
                        )
                    )
            elif key == "RETENTION":
                try:
                    if not isinstance(value, timedelta):
                        parse_interval(value)
                except Exception:
                    errors.append(
                        checks.Error(
                            f"{where} is not an interval: {value!r}",
                            hint="e.g. '7d' or '12h'",
                            id="kew.E007",
                        )
                    )
            elif not _positive(value):
                errors.append(
                    checks.Error(
                        f"{where} must be a positive number, not {value!r}",
                        hint=GRACE_HINT
                        if key == "SHUTDOWN_GRACE"
                        else f"e.g. {key!r}: {DEFAULTS[name][key]!r} (the default)",
                        id="kew.E007",
                    )
                )
    return errors


SUBTRANSACTIONS = 64  # PostgreSQL's per-transaction cache of subtransactions (PGPROC)


def _check_batch_size() -> list[checks.CheckMessage]:
    """Warn when a batch could overflow PostgreSQL's subtransaction cache (one per handler)."""
    consumers = kew_settings()["CONSUMERS"]
    size = consumers.get("BATCH_SIZE") if isinstance(consumers, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size <= SUBTRANSACTIONS:
        return []
    if not any(connection.vendor == "postgresql" for connection in connections.all()):
        return []
    return [
        checks.Warning(
            f"KEW['CONSUMERS']['BATCH_SIZE'] is {size}: a batch's transaction has a savepoint "
            f"per handler, and once one transaction holds more than {SUBTRANSACTIONS} "
            "subtransactions PostgreSQL slows down for every session",
            hint=f"Keep it at {SUBTRANSACTIONS} or below (the default is "
            f"{DEFAULTS['CONSUMERS']['BATCH_SIZE']}), less if handlers open savepoints of "
            "their own (nested atomic(), get_or_create).",
            id="kew.W002",
        )
    ]


def _check_provider(alias: str, entry: Any) -> list[checks.CheckMessage]:
    where = f"KEW['PROVIDERS'][{alias!r}]"
    if not isinstance(entry, dict) or ("URL" in entry) == ("BACKEND" in entry):
        return [
            checks.Error(
                f"{where} needs either 'URL' or 'BACKEND' (not both)",
                hint="e.g. {'URL': 'database://'} or {'BACKEND': 'dotted.Path', 'OPTIONS': {}}",
                id="kew.E001",
            )
        ]
    if "BACKEND" in entry:
        path = entry["BACKEND"]
        try:
            backend = import_string(path)
        except ImportError:
            return [
                checks.Error(
                    f"{where}: cannot import BACKEND {path!r}",
                    hint=f"Known backends: {', '.join(KNOWN_BACKENDS)}"
                    f"{_hint(path, KNOWN_BACKENDS)}",
                    id="kew.E003",
                )
            ]
        return _check_built(alias, entry) or _check_memory(
            where, backend.__name__ == "MemoryProvider"
        )
    url = entry["URL"]
    try:
        scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    except ValueError:
        scheme = url.partition("://")[0]
    if scheme not in known_schemes():
        return [
            checks.Error(
                f"{where}: unknown broker URL scheme {scheme!r} in {redact(str(url))!r}",
                hint=f"Known schemes: {', '.join(known_schemes())}{_hint(scheme, known_schemes())}",
                id="kew.E002",
            )
        ]
    return _check_built(alias, entry) or _check_memory(where, scheme == "memory")


def _check_built(alias: str, entry: dict[str, Any]) -> list[checks.CheckMessage]:
    """Build the provider (no connection is opened) and report why it cannot be built."""
    try:
        provider = build_provider(alias, entry)
    except Exception as error:  # noqa: BLE001 - any failure here is a configuration error
        message = str(error)
        if not isinstance(error, ProviderNotConfigured):  # e.g. a TypeError from OPTIONS
            message = (
                f"KEW['PROVIDERS'][{alias!r}] cannot be built: {type(error).__name__}: {error}"
            )
        return [
            checks.Error(
                message,
                hint="Fix the URL or OPTIONS of this provider; docs/django.md lists the "
                "options of database://, docs/artemis.md those of artemis:// and "
                "docs/rabbitmq.md those of amqp://.",
                id="kew.E008",
            )
        ]
    provider.close()
    return []


def _check_memory(where: str, is_memory: bool) -> list[checks.CheckMessage]:
    if is_memory and not settings.DEBUG:
        return [
            checks.Warning(
                f"{where} is the in-memory provider, and DEBUG is False",
                hint="Messages live in one process and vanish on restart; use database:// "
                "or a broker (artemis://, amqp://) in production.",
                id="kew.W001",
            )
        ]
    return []


def check_consumers(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check that each queue has one consumer and each retry schedule parses."""
    return [
        checks.Error(problem.message, hint=problem.hint, obj=problem.spec.handler, id=problem.id)
        for problem in consumers.problems()
    ]


def check_broker_reachable(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """At ``check --deploy``, connect to each provider once."""
    providers = kew_settings()["PROVIDERS"]
    if not isinstance(providers, dict):
        return []
    errors: list[checks.CheckMessage] = []
    for alias, entry in providers.items():
        try:
            provider = build_provider(alias, entry)
        except Exception:
            continue  # reported by check_settings
        try:
            provider.producer().close()
        except Exception as error:
            errors.append(
                checks.Error(
                    f"KEW['PROVIDERS'][{alias!r}] is unreachable: {error}",
                    hint="Start the broker, or fix KEW_BROKER_URL (host, port, user, password).",
                    id="kew.E006",
                )
            )
        finally:
            provider.close()
    return errors
