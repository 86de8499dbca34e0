"""What a consumer's limit is: declared in code, named in settings, overridden in the database.

``@consumer(q, limit=2)`` caps queue ``q`` at 2 messages at once;
``limit=Limit(concurrency=4, per_key=1, rate=20, key_rate=2)`` says more,
and ``key=`` (a function of the payload) names the key of each message.
``limit="imports"`` uses ``KEW["LIMITS"]["imports"]`` and shares its slots
with every consumer that names it. A ``KEW["LIMITS"]`` entry named after a
queue overrides that queue's declared values; a ``LimitSetting`` row (the
admin) overrides both, from the next start on, without a restart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from django.utils.module_loading import import_string

from kew_django.conf import kew_settings

KeyFunction = Callable[[Any], object]
SETTING_NAMES = {"CONCURRENCY": "concurrency", "PER_KEY": "per_key", "RATE": "rate"}
SETTING_NAMES["KEY_RATE"] = "key_rate"


@dataclass(frozen=True)
class Limit:
    """At most ``concurrency`` at once (``per_key`` per key), ``rate`` starts a second (per key)."""

    concurrency: int | None = None
    per_key: int | None = None
    rate: float | None = None
    key_rate: float | None = None
    name: str | None = None  # shares the slots of KEW["LIMITS"][name]; default: the queue's

    @property
    def keyed(self) -> bool:
        """Return whether the limit counts per key (a key function is then needed)."""
        return self.per_key is not None or self.key_rate is not None

    @property
    def empty(self) -> bool:
        """Return whether nothing is limited."""
        return all(getattr(self, f) is None for f in ("concurrency", "per_key", "rate", "key_rate"))

    def over(self, values: Mapping[str, Any]) -> Limit:
        """Return this limit with the non-blank ``values`` (lower-case field names) put over it."""
        known = {f.name for f in fields(self)} - {"name"}
        changed = {k: v for k, v in values.items() if k in known and v is not None}
        return replace(self, **changed) if changed else self

    def problems(self) -> list[str]:
        """Return what is wrong with the values (a count below 1, a rate not above 0)."""
        found = []
        for field in ("concurrency", "per_key"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                found.append(f"{field} must be a whole number of at least 1, not {value!r}")
        for field in ("rate", "key_rate"):
            value = getattr(self, field)
            if value is not None and not (
                isinstance(value, int | float) and value > 0 and math.isfinite(value)
            ):
                found.append(f"{field} must be starts per second above 0, not {value!r}")
        return found


def limit_settings() -> dict[str, Any]:
    """Return ``KEW["LIMITS"]``: limits by name (empty when absent)."""
    value = kew_settings().get("LIMITS") or {}
    return value if isinstance(value, dict) else {}


def from_settings(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return one ``KEW["LIMITS"]`` entry's values under ``Limit``'s field names."""
    return {SETTING_NAMES[k]: v for k, v in entry.items() if k in SETTING_NAMES}


def declared_limit(queue: str, limit: int | str | Limit | None) -> Limit | None:
    """Return the limit of ``queue``'s consumer: code, then settings of that name; None: none."""
    declared: Limit | None
    if limit is None or isinstance(limit, Limit):
        declared = limit
    elif isinstance(limit, str):
        declared = Limit(name=limit)
    else:
        declared = Limit(concurrency=limit)  # a bad count is reported by the check kew.E020
    name = (declared.name if declared is not None else None) or queue
    entry = limit_settings().get(name)
    if isinstance(entry, Mapping):
        declared = (declared or Limit()).over(from_settings(entry))
    if declared is None or declared.empty:
        return None
    return replace(declared, name=name)


def key_function(key: KeyFunction | str | None, name: str) -> KeyFunction | None:
    """Return the key function: the one given, else ``KEW["LIMITS"][name]["KEY"]`` (dotted)."""
    if key is not None and not isinstance(key, str):
        return key
    entry = limit_settings().get(name)
    path = key or (entry.get("KEY") if isinstance(entry, Mapping) else None)
    return import_string(path) if isinstance(path, str) else None
