"""System checks for limits: kew.E020 (a bad value), kew.E021 (no key), kew.W020 (SQLite)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import connections, router

from kew_django.limits.declared import (
    SETTING_NAMES,
    Limit,
    declared_limit,
    from_settings,
    key_function,
    limit_settings,
)
from kew_django.workers.registry import consumers

KNOWN = sorted([*SETTING_NAMES, "KEY"])


def check_limits(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Check ``KEW["LIMITS"]`` and each consumer's ``limit=``/``key=``."""
    found = [*_check_settings()]
    limited = False
    for spec in consumers:
        try:
            limit = declared_limit(spec.queue, spec.limit)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            found.append(_bad(f"consumer {spec.name}: limit={spec.limit!r}: {error}", spec.handler))
            continue
        if limit is None:
            continue
        limited = True
        found += [_bad(f"consumer {spec.name}: {p}", spec.handler) for p in limit.problems()]
        found += _check_key(spec, limit)
    return found + (_check_sqlite() if limited else [])


def _bad(message: str, obj: Any = None) -> checks.Error:
    return checks.Error(
        message,
        hint="Give counts as whole numbers of at least 1 and rates as starts per second "
        "above 0, e.g. limit=Limit(concurrency=4, per_key=1, rate=20).",
        obj=obj,
        id="kew.E020",
    )


def _check_settings() -> list[checks.CheckMessage]:
    raw = getattr(settings, "KEW", {}) or {}
    value = raw.get("LIMITS", {}) if isinstance(raw, Mapping) else {}
    if not isinstance(value, Mapping):
        return [_bad(f"KEW['LIMITS'] must be a dict of limits by name, not {type(value).__name__}")]
    found: list[checks.CheckMessage] = []
    for name, entry in limit_settings().items():
        if not isinstance(entry, Mapping):
            found.append(_bad(f"KEW['LIMITS'][{name!r}] must be a dict, not {entry!r}"))
            continue
        unknown = sorted(set(entry) - set(KNOWN))
        if unknown:
            found.append(_bad(f"KEW['LIMITS'][{name!r}]: unknown {unknown} (known: {KNOWN})"))
        problems = Limit(**from_settings(entry)).problems()
        found += [_bad(f"KEW['LIMITS'][{name!r}]: {p}") for p in problems]
    return found


def _check_key(spec: Any, limit: Limit) -> list[checks.CheckMessage]:
    try:
        key = key_function(spec.key, limit.name or spec.queue)
    except ImportError as error:
        key, problem = None, f"its key function cannot be imported: {error}"
    else:
        problem = "it limits per key but has no key function"
    if limit.keyed and key is None:
        return [
            checks.Error(
                f"consumer {spec.name}: {problem}",
                hint="Pass key= (a function of the payload, e.g. key=lambda d: d.user_id) "
                "or KEW['LIMITS'][name]['KEY'] (a dotted path).",
                obj=spec.handler,
                id="kew.E021",
            )
        ]
    return []


def _check_sqlite() -> list[checks.CheckMessage]:
    connection = connections[router.db_for_write(apps.get_model("kew_django", "LimitSlot"))]
    mode = (connection.settings_dict.get("OPTIONS") or {}).get("transaction_mode")
    if connection.vendor != "sqlite" or str(mode).upper() == "IMMEDIATE":
        return []
    return [
        checks.Warning(
            "limits on SQLite need IMMEDIATE transactions: two workers taking a slot at "
            "once otherwise fail with 'database is locked'",
            hint="Set DATABASES[...]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'.",
            id="kew.W020",
        )
    ]
