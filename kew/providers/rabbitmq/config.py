"""Settings of the RabbitMQ provider: one URL plus keyword options.

``amqp://user:password@host:5672/`` names one node and the default
virtual host ``/``; ``amqp://user:password@host1:5672,host2:5672/vhost``
names several nodes, tried in order (failover), and the virtual host
``vhost`` (``%2F`` is ``/``). ``amqps://`` (or ``tls=true``) wraps every
connection in TLS. Options come from the query string or from keyword
arguments (keywords win); a query option starting with ``x-`` is a
queue argument (``?x-delivery-limit=20``); unknown options are an error
with a hint.
"""

from __future__ import annotations

import difflib
import math
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from kew.errors import ConfigurationError
from kew.providers import redact

DEFAULT_PORT = 5672
TLS_PORT = 5671
SCHEMES = ("amqp", "amqps")
QUEUE_TYPES = ("quorum", "classic")
# Arguments Kew sets itself: a queue argument may not change them.
OWN_ARGUMENTS = frozenset({"x-queue-type"})


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _number(kind: Callable[[str], float], low: float, high: float = math.inf):
    def convert(text: str) -> float:
        value = kind(text)
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"{text!r} must be between {low} and {high}")
        return value

    return convert


def _queue_type(text: str) -> str:
    if text not in QUEUE_TYPES:
        raise ValueError(f"{text!r} is not a queue type (use quorum or classic)")
    return text


@dataclass(frozen=True)
class RabbitMQConfig:
    """Where the nodes are, how to log in, how patient to be, and how queues are made.

    Times are seconds. ``queue_arguments`` go to every work queue Kew
    declares (e.g. ``{"x-max-length": 100000}``); ``delay_levels`` wait
    queues hold scheduled messages, up to ``2**delay_levels`` ms ahead
    (see ``kew.providers.rabbitmq.delays``). With ``delivery_limit`` a
    message delivered more often than that without an ack moves to the
    queue's dead-letter queue (``<queue><dead_letter_suffix>``).
    """

    hosts: tuple[tuple[str, int], ...]
    user: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"
    tls: bool = False
    tls_ca: str | None = None
    tls_verify: bool = True
    heartbeat: int = 30
    connect_timeout: float = 5.0
    confirm_timeout: float = 30.0
    reconnect_attempts: int = 8
    reconnect_delay: float = 0.25
    reconnect_delay_max: float = 5.0
    queue_type: str = "quorum"
    queue_arguments: Mapping[str, object] = field(default_factory=dict)
    delay_levels: int = 32
    delay_prefix: str = "kew.delay"
    delivery_limit: int | None = None
    dead_letter_suffix: str = ".dead"
    url: str = ""  # redacted, for messages

    @property
    def where(self) -> str:
        """Return the node list as ``host:port, host:port`` for messages."""
        return ", ".join(f"{host}:{port}" for host, port in self.hosts)

    def work_queue_arguments(self, queue: str) -> dict[str, object]:
        """Return the arguments of work queue ``queue`` (its dead-letter queue's with a limit)."""
        arguments = {"x-queue-type": self.queue_type, **self.queue_arguments}
        if self.delivery_limit is not None:
            arguments.update(
                {
                    "x-delivery-limit": self.delivery_limit,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.dead_letter_queue(queue),
                    # at-least-once: a message leaves only once its dead-letter queue has it
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            )
        return arguments

    def dead_letter_queue(self, queue: str) -> str:
        """Return where ``queue``'s messages go past ``delivery_limit`` deliveries."""
        return f"{queue}{self.dead_letter_suffix}"


_OPTIONS: dict[str, Callable[[str], object]] = {
    "tls": _boolean,
    "tls_ca": str,
    "tls_verify": _boolean,
    "heartbeat": lambda text: int(_number(int, 0, 3600)(text)),
    "connect_timeout": _number(float, 0.001),
    "confirm_timeout": _number(float, 0.001),
    "reconnect_attempts": lambda text: int(_number(int, 0)(text)),
    "reconnect_delay": _number(float, 0),
    "reconnect_delay_max": _number(float, 0),
    "queue_type": _queue_type,
    "delay_levels": lambda text: int(_number(int, 1, 40)(text)),
    "delay_prefix": str,
    "delivery_limit": lambda text: int(_number(int, 0)(text)),
    "dead_letter_suffix": str,
}
assert set(_OPTIONS) <= {f.name for f in fields(RabbitMQConfig)}


DEAD_LETTER_ARGUMENTS = frozenset(  # what delivery_limit= sets on each work queue
    {
        "x-delivery-limit",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-dead-letter-strategy",
        "x-overflow",
    }
)


def parse_url(url: str, **options: object) -> RabbitMQConfig:
    """Return the configuration named by ``url`` and ``options``; raise ConfigurationError."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a broker URL must be a string, not {type(url).__name__}")
    shown = redact(url)
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
    except ValueError as error:
        raise ConfigurationError(f"malformed broker URL {shown!r}: {error}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"broker URL {shown!r} must start with amqp:// or amqps://")
    tls = parts.scheme == "amqps"
    settings: dict[str, Any] = {"tls": tls, "url": shown, "vhost": _vhost(parts.path)}
    if user is not None:
        settings["user"] = user
    if password is not None:
        settings["password"] = password
    arguments = {name: _argument(value) for name, value in query if name.startswith("x-")}
    settings.update(_converted({n: v for n, v in query if not n.startswith("x-")}, shown))
    keyword_arguments = options.pop("queue_arguments", None) or {}
    if not isinstance(keyword_arguments, Mapping):
        raise ConfigurationError("queue_arguments must be a dict, e.g. {'x-max-length': 100000}")
    arguments.update(keyword_arguments)
    settings.update(_converted(options, shown))
    _check_arguments(arguments)
    default_port = TLS_PORT if settings["tls"] else DEFAULT_PORT
    hosts = _hosts(parts.netloc, shown, default_port)
    config = RabbitMQConfig(hosts=hosts, queue_arguments=arguments, **settings)
    if config.delivery_limit is not None and DEAD_LETTER_ARGUMENTS & set(arguments):
        raise ConfigurationError(
            "delivery_limit= sets the queue arguments "
            f"{', '.join(sorted(DEAD_LETTER_ARGUMENTS))}: leave those out"
        )
    if config.tls_ca is not None:
        _check_ca_file(config.tls_ca)
    if not config.dead_letter_suffix:
        raise ConfigurationError("dead_letter_suffix must not be empty, e.g. .dead")
    if not config.delay_prefix or any(
        word in ("*", "#") for word in config.delay_prefix.split(".")
    ):
        raise ConfigurationError(f"delay_prefix={config.delay_prefix!r}: use e.g. kew.delay")
    return config


def _check_ca_file(path: str) -> None:
    """Raise ConfigurationError unless ``path`` is a PEM file of CA certificates."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as error:  # missing, unreadable, or no certificate in it
        raise ConfigurationError(
            f"tls_ca={path!r} is not a CA certificate file (PEM): {error}"
        ) from None


def _vhost(path: str) -> str:
    """Return the virtual host named by a URL path: '' or '/' is '/', '/%2F' is '/' too."""
    if path in ("", "/"):
        return "/"
    name = unquote(path[1:])
    if "/" in path[1:]:
        raise ConfigurationError(f"the URL path {path!r} must name one virtual host (%2F for /)")
    return name


def _argument(text: str) -> object:
    """Return a queue argument from its query-string text: an integer when it is one."""
    try:
        return int(text)
    except ValueError:
        return text


def _check_arguments(arguments: Mapping[str, object]) -> None:
    for name in arguments:
        if not isinstance(name, str) or not name.startswith("x-"):
            raise ConfigurationError(f"queue argument {name!r} must start with 'x-'")
        if name in OWN_ARGUMENTS:
            raise ConfigurationError(f"queue argument {name!r} is Kew's: use queue_type=")
    if "x-delivery-limit" in arguments and "x-dead-letter-exchange" not in arguments:
        # past the limit a quorum queue drops the message unless it has somewhere to go
        raise ConfigurationError(
            "x-delivery-limit without x-dead-letter-exchange drops messages: "
            "name a dead-letter exchange (and routing key) too"
        )


def _hosts(netloc: str, shown: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """Split ``user:pw@h1:p1,h2:p2`` into ``((h1, p1), (h2, p2))``."""
    host_list = netloc.rpartition("@")[2]
    if not host_list:
        raise ConfigurationError(f"broker URL {shown!r} names no host, e.g. amqp://host:5672/")
    hosts = []
    for part in host_list.split(","):
        try:
            one = urlsplit("//" + part.strip())
            port = one.port
        except ValueError as error:
            raise ConfigurationError(f"bad host:port {part!r} in {shown!r}: {error}") from None
        if not one.hostname:
            raise ConfigurationError(f"empty host in broker URL {shown!r}")
        if port == 0:
            raise ConfigurationError(f"port 0 in broker URL {shown!r}: name the node's port")
        hosts.append((one.hostname, port or default_port))
    return tuple(hosts)


def _converted(raw: Mapping[str, object], shown: str) -> dict[str, object]:
    converted: dict[str, object] = {}
    for name, value in raw.items():
        convert = _OPTIONS.get(name)
        if convert is None:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(_OPTIONS))
            raise ConfigurationError(
                f"unknown RabbitMQ option {name!r} for {shown!r} (known: {known}, "
                f"or a queue argument x-...){hint}"
            )
        if (
            value is None
            and name in ("tls_ca", "delivery_limit")
            or isinstance(value, bool)
            and convert is _boolean
        ):
            converted[name] = value
            continue
        try:
            converted[name] = convert(value if isinstance(value, str) else str(value))
        except ValueError as error:
            raise ConfigurationError(f"bad value for RabbitMQ option {name!r}: {error}") from None
    return cast(dict[str, object], converted)
