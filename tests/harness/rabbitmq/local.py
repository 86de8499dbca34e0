"""A node run from Debian's ``rabbitmq-server`` package, in a throwaway directory.

:meth:`LocalRabbit.start` writes the node's config and cookie in a temp
dir, picks free ports of 127.0.0.1 (AMQP, distribution, epmd) and runs the
server script in its own process group; it is ready when an AMQP login
succeeds. :meth:`~LocalRabbit.stop` (SIGTERM: a clean shutdown) and
:meth:`~LocalRabbit.kill` (SIGKILL) keep the data, so the next start runs
the same node on the same ports; :meth:`~LocalRabbit.close` deletes it and
stops the node's epmd.

``LocalRabbit(tls=True)`` also makes a throwaway CA and a server
certificate for 127.0.0.1 (:mod:`tests.harness.rabbitmq.tls`) in the
temp dir and listens for AMQP over TLS on one more free port:
``tls_port``, ``tls_url`` (``amqps://``) and ``ca_path`` (the CA's PEM
file, for the provider's ``tls_ca``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.harness.rabbitmq.base import RabbitServer
from tests.harness.rabbitmq.node import Node, write_cookie
from tests.harness.rabbitmq.tls import ServerCertificate, make_authority
from tests.harness.services import ServiceStartError, ServiceUnavailable, free_port

__all__ = ["INSTALL_HINT", "LocalRabbit", "find_rabbitmq_server"]

INSTALL_HINT = "`apt-get install rabbitmq-server` (Debian) or set KEW_TEST_RABBITMQ_URL"
ENV_SBIN = "KEW_TEST_RABBITMQ_SBIN"  # a directory holding rabbitmq-server and rabbitmqctl
# The package's own scripts: /usr/sbin/rabbitmq-server is a wrapper that switches
# to the rabbitmq user and Debian's directories, which the harness must avoid.
CANDIDATES = ("/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin")


def find_rabbitmq_server() -> Path | None:
    """Return the directory of the ``rabbitmq-server`` and ``rabbitmqctl`` scripts, if any."""
    chosen = os.environ.get(ENV_SBIN)
    for directory in [chosen] if chosen else CANDIDATES:
        path = Path(directory)
        if (path / "rabbitmq-server").is_file() and (path / "rabbitmqctl").is_file():
            return path
    return None


def node_ports() -> tuple[int, int, int]:
    """Return free ports for AMQP, Erlang distribution and epmd."""
    return free_port(), free_port(), free_port()


class LocalRabbit(RabbitServer):
    """A RabbitMQ node of the harness's own; needs Debian's ``rabbitmq-server``."""

    mode = "local"

    _tmp: Path | None = None
    node: Node | None = None
    certificate: ServerCertificate | None = None

    def __init__(self, *, tls: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.tls = tls
        self.tls_port = 0

    @property
    def tls_url(self) -> str:
        """``amqps://user:password@127.0.0.1:tls_port/`` (a node started with ``tls=True``)."""
        if not self.tls_port:
            raise RuntimeError("this node has no TLS listener: start it with tls=True")
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"amqps://{user}:{password}@{self.host}:{self.tls_port}/"

    @property
    def ca_path(self) -> Path:
        """The PEM file of the CA that signed the node's certificate (``tls=True``)."""
        if self.certificate is None:
            raise RuntimeError("this node has no TLS listener: start it with tls=True")
        return self.certificate.ca

    @property
    def nodename(self) -> str | None:
        return self.node.nodename if self.node else None

    @property
    def log_path(self) -> Path | None:
        return self.node.log_path if self.node else None

    def is_running(self) -> bool:
        return self.node is not None and self.node.is_running()

    def stop(self, timeout: float = 60.0) -> None:
        if self.node is not None:
            self.node.signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        if self.node is not None:
            self.node.signal(signal.SIGKILL, 30.0)

    def log_tail(self, n: int = 50) -> str:
        return self.node.log_tail(n) if self.node else ""

    def ctl(self, *args: str) -> str:
        """Run ``rabbitmqctl`` against this node; return its output."""
        if self.node is None:
            raise RuntimeError("the node is not started")
        return self.node.ctl(*args).stdout

    def _start(self) -> None:
        if self.node is not None:
            self.node.start(self.start_timeout)  # the same node, data and ports
            return
        sbin = find_rabbitmq_server()
        if sbin is None:
            raise ServiceUnavailable("RabbitMQ", INSTALL_HINT)
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", self.user + self.password):
            # rabbitmq.conf takes them unquoted
            raise ValueError("RabbitMQ user and password must match [A-Za-z0-9_.@-]+")
        self._tmp = Path(tempfile.mkdtemp(prefix="kew-rabbitmq-"))
        write_cookie(self._tmp, secrets.token_hex(16))
        try:
            if self.tls:
                self.certificate = make_authority(self._tmp / "tls").issue()
            self._first_start(sbin)
        except BaseException:
            self.close(graceful=False)
            raise

    def _first_start(self, sbin: Path) -> None:
        assert self._tmp is not None
        for attempt in range(3):
            ports = node_ports()
            self.node = Node(
                sbin,
                self._tmp / f"node-{attempt}",
                self._tmp,
                nodename=f"kew-{secrets.token_hex(4)}@localhost",
                ports=ports,
                user=self.user,
                password=self.password,
                extra_config=self.extra_config,
                tls_port=free_port() if self.certificate else 0,
                certificate=self.certificate,
            )
            self.port = ports[0]
            self.tls_port = self.node.tls_port
            self.node.configure()
            try:
                self.node.start(self.start_timeout)
                return
            except ServiceStartError as error:
                # another process took one of the ports: try new ones, in a new directory
                self.node.stop_epmd()
                if attempt == 2 or "eaddrinuse" not in str(error).lower():
                    raise

    def _close(self, graceful: bool) -> None:
        node, self.node = self.node, None
        if node is not None:
            node.signal(signal.SIGTERM if graceful else signal.SIGKILL, 60.0)
            node.stop_epmd()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self.certificate = None
        self.tls_port = 0
