"""Providers implement ``kew.providers.base``; ``connect`` picks one from a URL."""

from __future__ import annotations

import difflib
import importlib
import re
from urllib.parse import urlsplit

from kew.errors import ConfigurationError
from kew.providers.base import Provider

# scheme://user:password@ : the user ends at the first ":", the password at the last "@".
_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/?#@:]*):(?P<password>.*)@", re.S
)

# URL scheme -> "module:factory"; the factory takes the URL and keyword options.
SCHEMES = {
    "memory": "kew.providers.memory:MemoryProvider.from_url",
    "artemis": "kew.providers.artemis:ArtemisProvider.from_url",
    "artemis+ssl": "kew.providers.artemis:ArtemisProvider.from_url",
    "amqp": "kew.providers.rabbitmq:RabbitMQProvider.from_url",
    "amqps": "kew.providers.rabbitmq:RabbitMQProvider.from_url",
}


def connect(url: str, **options: object) -> Provider:
    """Return the provider named by ``url``'s scheme, e.g. ``artemis://u:p@host:61613``."""
    scheme = urlsplit(url).scheme
    if not scheme or not url.startswith(f"{scheme}://"):
        raise ConfigurationError(f"broker URL {redact(url)!r} has no scheme, e.g. 'artemis://'")
    target = SCHEMES.get(scheme)
    if target is None:
        close = difflib.get_close_matches(scheme, SCHEMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(SCHEMES))
        raise ConfigurationError(f"unknown broker scheme {scheme!r} (known: {known}){hint}")
    module_name, _, attribute = target.partition(":")
    factory: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory(url, **options)  # type: ignore[operator]


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for logs and errors; never raises.

    The password runs to the URL's last ``@``: it may hold ``@``, ``/`` or
    ``#`` unescaped, and a URL with ``@`` in its path loses more than its
    password rather than show any of it.
    """
    match = _USERINFO.match(url)
    if match is None:
        return url
    return f"{match['head']}{match['user']}:***@{url[match.end() :]}"
