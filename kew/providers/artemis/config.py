"""Settings of the Artemis provider: one URL plus keyword options.

``artemis://user:password@host:61613/?heartbeat=10000`` names one broker;
``artemis://user:password@host1:61613,host2:61613/`` names several, tried
in order (failover). ``artemis+ssl://`` (or ``tls=true``) wraps every
connection in TLS. Options come from the query string or from keyword
arguments (keywords win); unknown options are an error with a hint.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from kew.errors import ConfigurationError
from kew.providers import redact

DEFAULT_PORT = 61613
SCHEMES = ("artemis", "artemis+ssl")


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _non_negative(
    kind: Callable[[str], int | float], *, positive: bool = False
) -> Callable[[str], int | float]:
    def convert(text: str) -> int | float:
        value = kind(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        if value < 0 or (positive and value == 0):
            raise ValueError(f"{text!r} must be {'above zero' if positive else 'zero or more'}")
        return value

    return convert


@dataclass(frozen=True)
class ArtemisConfig:
    """Where the brokers are, how to log in, and how patient to be.

    Times are seconds, except ``heartbeat`` (milliseconds, as in STOMP).
    ``window`` is Artemis's consumer-window-size in bytes for a receiver
    with ``prefetch`` > 1 (``None``: 1 KiB per prefetched message); a
    prefetch of 1 always means window 0, one message at a time.
    ``receipt_address`` is the MULTICAST address, without subscribers,
    of the marker frame that carries each send's receipt (see producer).
    """

    hosts: tuple[tuple[str, int], ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca: str | None = None
    tls_verify: bool = True
    heartbeat: int = 10_000
    connect_timeout: float = 5.0
    receipt_timeout: float = 30.0
    reconnect_attempts: int = 8
    reconnect_delay: float = 0.25
    reconnect_delay_max: float = 5.0
    window: int | None = None
    max_header_bytes: int = 65_536
    receipt_address: str = "kew.receipts"
    url: str = ""  # redacted, for messages

    @property
    def where(self) -> str:
        """Return the broker list as ``host:port, host:port`` for messages."""
        return ", ".join(f"{host}:{port}" for host, port in self.hosts)


# Option name -> converter of its text form (query strings give text).
_OPTIONS: dict[str, Callable[[str], object]] = {
    "tls": _boolean,
    "tls_ca": str,
    "tls_verify": _boolean,
    "heartbeat": _non_negative(int),
    "connect_timeout": _non_negative(float, positive=True),
    "receipt_timeout": _non_negative(float, positive=True),
    "reconnect_attempts": _non_negative(int),
    "reconnect_delay": _non_negative(float),
    "reconnect_delay_max": _non_negative(float),
    "window": int,
    "max_header_bytes": _non_negative(int),
    "receipt_address": str,
}
_OPTIONAL = {"tls_ca", "window"}  # may be given as None in keyword options
assert set(_OPTIONS) <= {f.name for f in fields(ArtemisConfig)}


def parse_url(url: str, **options: object) -> ArtemisConfig:
    """Return the configuration named by ``url`` and ``options``; raise ConfigurationError."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a broker URL must be a string, not {type(url).__name__}")
    shown = redact(url)
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ConfigurationError(f"malformed broker URL {shown!r}: {error}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(
            f"broker URL {shown!r} must start with artemis:// or artemis+ssl://"
        )
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"broker URL {shown!r} has a path {parts.path!r}; put options in the query string"
        )
    hosts = _hosts(parts.netloc, shown)
    settings: dict[str, object] = {"tls": parts.scheme == "artemis+ssl"}
    try:
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
    except ValueError as error:
        raise ConfigurationError(f"malformed broker URL {shown!r}: {error}") from None
    settings.update(_converted(query, shown, from_query=True))
    settings.update(_converted(options, shown, from_query=False))
    # Each value was converted by its option's converter in _OPTIONS, so it fits its field.
    typed = cast(dict[str, Any], settings)
    config = ArtemisConfig(hosts=hosts, user=user, password=password, url=shown, **typed)
    if config.heartbeat and config.heartbeat < 500:
        raise ConfigurationError(f"heartbeat={config.heartbeat}: Artemis needs at least 500 ms")
    if not config.receipt_address or "\x00" in config.receipt_address:
        raise ConfigurationError(
            f"receipt_address={config.receipt_address!r}: name an address, e.g. kew.receipts"
        )
    if config.window is not None and config.window < -1:
        raise ConfigurationError(f"window={config.window}: use -1 (unlimited), 0 or a byte count")
    return config


def _hosts(netloc: str, shown: str) -> tuple[tuple[str, int], ...]:
    """Split ``user:pw@h1:p1,h2:p2`` into ``((h1, p1), (h2, p2))``."""
    host_list = netloc.rpartition("@")[2]
    if not host_list:
        raise ConfigurationError(f"broker URL {shown!r} names no host, e.g. artemis://host:61613")
    hosts = []
    for part in host_list.split(","):
        try:
            one = urlsplit("//" + part.strip())
            port = one.port
        except ValueError as error:
            raise ConfigurationError(
                f"bad host:port {part!r} in broker URL {shown!r}: {error}"
            ) from None
        if not one.hostname:
            raise ConfigurationError(f"empty host in broker URL {shown!r}")
        if port == 0:
            raise ConfigurationError(f"port 0 in broker URL {shown!r}: name the broker's port")
        hosts.append((one.hostname, port or DEFAULT_PORT))
    return tuple(hosts)


def _converted(raw: Mapping[str, object], shown: str, *, from_query: bool) -> dict[str, object]:
    converted: dict[str, object] = {}
    for name, value in raw.items():
        convert = _OPTIONS.get(name)
        if convert is None:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(_OPTIONS))
            raise ConfigurationError(
                f"unknown Artemis option {name!r} for {shown!r} (known: {known}){hint}"
            )
        if not from_query and not isinstance(value, str):
            if value is None and name in _OPTIONAL:
                converted[name] = None
                continue
            if convert is _boolean and isinstance(value, bool):
                converted[name] = value
                continue
        text = value if isinstance(value, str) else str(value)  # query values are str already
        try:
            converted[name] = convert(text)
        except ValueError as error:
            raise ConfigurationError(f"bad value for Artemis option {name!r}: {error}") from None
    return converted
