"""What every RabbitMQ broker of the harness offers, wherever it comes from."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import quote

from tests.harness.lifecycle import Server

__all__ = ["AMQP_PORT", "RabbitServer", "amqp_answers"]

AMQP_PORT = 5672


class RabbitServer(Server):
    """A RabbitMQ broker for tests, with the lifecycle of :mod:`tests.harness.lifecycle`.

    ``RabbitServer(**options)`` returns the subclass for the source that
    :func:`tests.harness.rabbitmq.pick_source` picks:
    :class:`~tests.harness.rabbitmq.url.UrlRabbit` or
    :class:`~tests.harness.rabbitmq.local.LocalRabbit`. Nothing starts
    before :meth:`start`.

    Connection attributes (valid after :meth:`start`): ``host``, ``port``
    (AMQP), ``user``, ``password``, ``url`` (``amqp://user:password@host:port/``),
    ``mode``. Local nodes also set ``nodename``, ``directory`` and ``log_path``.
    """

    def __new__(cls, **options: Any) -> RabbitServer:
        chosen = cls
        if cls is RabbitServer:
            from tests.harness.rabbitmq import pick_source

            chosen = pick_source()
        return super().__new__(chosen)

    def __init__(
        self,
        *,
        user: str = "kew",
        password: str = "kew",
        start_timeout: float = 90.0,
        config: str = "",
    ) -> None:
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self.extra_config = config  # rabbitmq.conf lines added to the harness's own
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def url(self) -> str:
        """``amqp://user:password@host:port/`` (percent-encoded, the default vhost)."""
        return (
            f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} amqp={self.host}:{self.port}>"


def amqp_answers(host: str, port: int, user: str, password: str, timeout: float) -> str | None:
    """Poll until an AMQP login succeeds; return None, or the last error after ``timeout``."""
    import pika  # the provider's client; imported here so the harness loads without it
    import pika.exceptions

    parameters = pika.ConnectionParameters(
        host,
        port,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
        socket_timeout=2.0,
        blocked_connection_timeout=5.0,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            # a plain TCP connect first: pika logs every refused connection as an ERROR
            socket.create_connection((host, port), timeout=2.0).close()
            pika.BlockingConnection(parameters).close()
            return None
        except OSError as error:
            problem = f"{host}:{port}: {error}"
        except pika.exceptions.AMQPError as error:
            problem = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            return problem
        time.sleep(0.2)
