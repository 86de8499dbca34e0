"""The database provider's options: ``database://[ALIAS][?lease=SECONDS&poll_interval=SECONDS]``.

``direct=false`` (``true``, the default) says whether ``Channel.send`` writes
the queue row itself (``DatabaseProvider.direct``). Every other value is a
finite number of seconds above zero, at most a year; anything else (an
unknown option, ``nan``, ``inf``, ``0``, text, a path, a password) raises
``ConfigurationError`` naming what to fix, so the system checks report it
at start-up.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kew.errors import ConfigurationError

SECONDS = ("lease", "poll_interval")
SWITCHES = ("direct",)
OPTIONS = (*SECONDS, *SWITCHES)
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
MIN_SECONDS = 0.001  # below a millisecond a timedelta rounds toward 0
MAX_SECONDS = 366 * 86400.0  # a year: more is a typo (and overflows a timedelta at 2.7e6 years)


def seconds(name: str, value: object) -> float:
    """Return ``value`` as a finite number of seconds above zero; raise ConfigurationError."""
    if isinstance(value, bool):
        raise ConfigurationError(f"database:// options take seconds: {name}={value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"database:// options take seconds: {name}={value!r} is not a number"
        ) from None
    if not math.isfinite(number) or number < MIN_SECONDS or number > MAX_SECONDS:
        raise ConfigurationError(
            f"database:// lease and poll_interval must be finite seconds from 0.001 "
            f"to a year: {name}={value!r}"
        )
    return number


def switch(name: str, value: object) -> bool:
    """Return ``value`` as a bool (True, "true", "1", "yes", "on" or their opposites)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ConfigurationError(f"database:// option {name} takes true or false, not {value!r}")


def parse(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the provider's keyword arguments (``using`` and the options) for ``url``.

    Keyword ``options`` win over the query string's; ``using`` among them
    names the DATABASES alias instead of the URL's.
    """
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        netloc = parts.netloc
    except ValueError as error:
        raise ConfigurationError(f"malformed database:// URL: {error}") from None
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"database:// URL has a path {parts.path!r}: write database://ALIAS?lease=SECONDS"
        )
    if "@" in netloc or ":" in netloc:
        raise ConfigurationError(
            "database:// names a DATABASES alias, not a server: write database://ALIAS "
            "and put the server in DATABASES"
        )
    options = dict(options)
    using = options.pop("using", None) or netloc or None
    if using is not None and not isinstance(using, str):
        raise ConfigurationError(f"database:// alias must be a DATABASES key, not {using!r}")
    given: dict[str, Any] = {}
    for name, value in [*query, *options.items()]:
        if name not in OPTIONS:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(
                f"unknown database:// option {name!r} (known: {', '.join(OPTIONS)}){hint}"
            )
        given[name] = switch(name, value) if name in SWITCHES else seconds(name, value)
    return {"using": using, **given}
