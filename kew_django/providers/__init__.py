"""Providers named in ``KEW["PROVIDERS"]``, built once per process and alias.

``providers`` is the process's handler (as Django's ``caches``):
``providers["default"]`` or ``get_provider("default")``.

An alias is configured by URL (``{"URL": "artemis://u:p@host:61613"}`` or
``amqp://u:p@host:5672/`` for RabbitMQ,
handed to ``kew.connect``; ``database://`` selects the Django database
provider) or by class (``{"BACKEND": "dotted.Path", "OPTIONS": {...}}``).
"""

from __future__ import annotations

import difflib
import threading
from typing import Any
from urllib.parse import urlsplit

from django.utils.module_loading import import_string

from kew.errors import ConfigurationError
from kew.providers import SCHEMES, connect, redact
from kew.providers.base import Provider
from kew_django.conf import section
from kew_django.errors import KewImproperlyConfigured
from kew_django.providers.database import DatabaseProvider

DATABASE_SCHEME = "database"
KNOWN_BACKENDS = (
    "kew_django.providers.database.DatabaseProvider",
    "kew.providers.memory.MemoryProvider",
    "kew.providers.artemis.ArtemisProvider",
    "kew.providers.rabbitmq.RabbitMQProvider",
)


class ProviderNotConfigured(KewImproperlyConfigured):
    """An alias of KEW["PROVIDERS"] is missing or wrong; the message names it."""


def known_schemes() -> list[str]:
    """Return the URL schemes a provider URL may use."""
    return sorted({*SCHEMES, DATABASE_SCHEME})


def build_provider(alias: str, config: Any) -> Provider:
    """Return a new provider for one KEW["PROVIDERS"] entry."""
    if not isinstance(config, dict) or ("URL" in config) == ("BACKEND" in config):
        raise ProviderNotConfigured(
            f"KEW['PROVIDERS'][{alias!r}] needs either 'URL' or 'BACKEND' (not both)"
        )
    options = dict(config.get("OPTIONS") or {})
    if "BACKEND" in config:
        path = config["BACKEND"]
        try:
            backend = import_string(path)
        except ImportError as error:
            hint = _hint(path, KNOWN_BACKENDS)
            raise ProviderNotConfigured(
                f"KEW['PROVIDERS'][{alias!r}]: cannot import BACKEND {path!r}{hint}"
            ) from error
        return backend(**options)
    url = config["URL"]
    scheme = urlsplit(url).scheme
    try:
        if scheme == DATABASE_SCHEME:
            return DatabaseProvider.from_url(url, **options)
        return connect(url, **options)
    except ConfigurationError as error:
        where = f"KEW['PROVIDERS'][{alias!r}] ({redact(url)})"
        raise ProviderNotConfigured(f"{where}: {error}") from error


def _hint(value: str, choices: Any) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class ProviderHandler:
    """Build each configured provider on first use and keep it; thread-safe."""

    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()

    def __getitem__(self, alias: str) -> Provider:
        with self._lock:
            provider = self._providers.get(alias)
            if provider is None:
                configs = section("PROVIDERS")
                if alias not in configs:
                    known = ", ".join(sorted(configs)) or "none"
                    raise ProviderNotConfigured(
                        f"no provider {alias!r} in KEW['PROVIDERS'] (configured: {known})"
                    )
                provider = self._providers[alias] = build_provider(alias, configs[alias])
            return provider

    def close_all(self) -> None:
        """Close and forget every provider built so far."""
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            provider.close()


providers = ProviderHandler()


def get_provider(alias: str = "default") -> Provider:
    """Return the provider configured as ``alias`` in KEW["PROVIDERS"]."""
    return providers[alias]
