"""A RabbitMQ cluster of local nodes (three by default), for quorum-queue replication tests.

:class:`RabbitCluster` starts ``size`` nodes of Debian's ``rabbitmq-server``
(as :class:`~tests.harness.rabbitmq.local.LocalRabbit` does one), with one
Erlang cookie and one epmd port, and joins the second and later ones to
the first (``rabbitmqctl join_cluster``). Its ``url`` lists every node's
AMQP port, for the provider's failover (``url_for(1, 2, 0)`` in another
order). ``kill(i)``, ``stop_node(i)`` and
``start_node(i)`` act on one node; ``stop()``, ``kill()`` and ``start()``
on all (a cluster's nodes start together: each waits for the others it
knew when it stopped). ``close()`` deletes everything and stops epmd.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

from tests.harness.lifecycle import Server
from tests.harness.rabbitmq.local import INSTALL_HINT, find_rabbitmq_server
from tests.harness.rabbitmq.node import Node, write_cookie
from tests.harness.services import ServiceUnavailable, free_port

__all__ = ["RabbitCluster"]


class RabbitCluster(Server):
    """``size`` local RabbitMQ nodes in one cluster, with the lifecycle of ``Server``."""

    mode = "local"

    def __init__(
        self,
        *,
        size: int = 3,
        user: str = "kew",
        password: str = "kew",
        start_timeout: float = 120.0,
        config: str = "",
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", user + password):
            raise ValueError("RabbitMQ user and password must match [A-Za-z0-9_.@-]+")
        self.size = size
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self.extra_config = config
        self.nodes: list[Node] = []
        self._tmp: Path | None = None

    @property
    def url(self) -> str:
        """``amqp://user:password@127.0.0.1:p1,127.0.0.1:p2,.../``: every node, in order."""
        hosts = ",".join(f"127.0.0.1:{node.amqp_port}" for node in self.nodes)
        return f"amqp://{self.user}:{self.password}@{hosts}/"

    def url_for(self, *order: int) -> str:
        """The URL over the nodes at indexes ``order``, tried in that order, e.g. ``(1, 2, 0)``."""
        hosts = ",".join(f"127.0.0.1:{self.nodes[i].amqp_port}" for i in order)
        return f"amqp://{self.user}:{self.password}@{hosts}/"

    def node_url(self, index: int) -> str:
        """The URL of node ``index`` alone."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.nodes[index].amqp_port}/"

    def is_running(self) -> bool:
        return bool(self.nodes) and all(node.is_running() for node in self.nodes)

    def stop(self, timeout: float = 60.0) -> None:
        for node in reversed(self.nodes):
            node.signal(signal.SIGTERM, timeout)

    def kill(self, index: int | None = None) -> None:
        """SIGKILL node ``index``, or every node."""
        for node in self.nodes if index is None else [self.nodes[index]]:
            node.signal(signal.SIGKILL, 30.0)

    def stop_node(self, index: int, timeout: float = 60.0) -> None:
        """Shut node ``index`` down cleanly; the others go on."""
        self.nodes[index].signal(signal.SIGTERM, timeout)

    def start_node(self, index: int) -> None:
        """Start node ``index`` again (same data, same ports) and wait until it accepts AMQP."""
        node = self.nodes[index]
        if not node.is_running():
            node.start(self.start_timeout)

    def log_tail(self, n: int = 50) -> str:
        return "\n".join(f"--- {node.nodename}\n{node.log_tail(n)}" for node in self.nodes)

    def _start(self) -> None:
        if self.nodes:
            stopped = [node for node in self.nodes if not node.is_running()]
            for node in stopped:
                node.launch()
            for node in stopped:
                node.wait(self.start_timeout)
            return
        sbin = find_rabbitmq_server()
        if sbin is None:
            raise ServiceUnavailable("RabbitMQ", INSTALL_HINT)
        self._tmp = Path(tempfile.mkdtemp(prefix="kew-rabbitmq-cluster-"))
        write_cookie(self._tmp, secrets.token_hex(16))
        try:
            self._form(sbin)
        except BaseException:
            self.close(graceful=False)
            raise

    def _form(self, sbin: Path) -> None:
        assert self._tmp is not None
        epmd = free_port()
        tag = secrets.token_hex(3)
        for index in range(self.size):
            node = Node(
                sbin,
                self._tmp / f"node-{index}",
                self._tmp,
                nodename=f"kew-{tag}-{index}@localhost",
                ports=(free_port(), free_port(), epmd),
                user=self.user,
                password=self.password,
                extra_config=self.extra_config,
            )
            node.configure()
            self.nodes.append(node)
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait(self.start_timeout)
        first = self.nodes[0].nodename
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first)
            node.ctl("start_app")

    def _close(self, graceful: bool) -> None:
        for node in reversed(self.nodes):
            node.signal(signal.SIGTERM if graceful else signal.SIGKILL, 60.0)
        if self.nodes:
            self.nodes[0].stop_epmd()
        self.nodes = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
