"""A symmetric Artemis cluster on one host: N brokers from one distribution, shifted ports.

:class:`ArtemisCluster` makes ``size`` instances with ``artemis create
--clustered``, each with static connectors to all the others (no UDP
discovery), ``max-hops`` 1, ``message-load-balancing`` ``ON_DEMAND``
(a message goes to a node whose queue has consumers) and
``redistribution-delay`` 0 (Artemis's default, -1, never moves a message
that already sits on a node whose consumers left; 0 moves it at once to
a node that has consumers). Every node has its own STOMP acceptor; a
client lists the nodes in its URL (``url_for``), and the provider fails
over along that list.

Duplicate detection is per node: the ``_AMQ_DUPL_ID`` cache of node A
knows nothing of what node B stored. A message sent again to B after A
died (its receipt lost) is stored twice; the idempotent consumer is what
keeps its effect single.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Self
from urllib.parse import quote

from tests.harness.artemis.base import CORE_PORT
from tests.harness.artemis.instance import edit_broker_xml, free_offset
from tests.harness.artemis.local import LocalArtemis
from tests.harness.lifecycle import Server
from tests.harness.services import ServiceStartError

__all__ = ["ArtemisCluster", "ClusterNode", "cluster_url", "edit_broker_xml"]

CONNECTED_LINE = "AMQ221027"  # "Bridge ClusterConnectionBridge@... is connected"
NODE_SPACING = 10  # port offsets of neighbouring nodes


class ClusterNode(LocalArtemis):
    """One broker of a cluster: a local instance on a fixed port offset, knowing its peers."""

    def __init__(
        self,
        *,
        name: str,
        port_offset: int,
        peers: Sequence[int],
        cluster_user: str,
        cluster_password: str,
        create_args: Sequence[str] = (),
        **options: Any,
    ) -> None:
        cluster_args = [
            "--name", name,
            "--clustered",
            "--static-cluster", ",".join(f"tcp://127.0.0.1:{port}" for port in peers),
            "--cluster-user", cluster_user, "--cluster-password", cluster_password,
            "--max-hops", "1",
            "--message-load-balancing", "ON_DEMAND",
        ]  # fmt: skip
        super().__init__(create_args=[*cluster_args, *create_args], **options)
        self.name = name
        self.port_offset = port_offset
        self.peers = tuple(peers)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} stomp={self.stomp_host}:{self.stomp_port}>"

    def _configure(self) -> None:
        assert self.instance_dir is not None
        edit_broker_xml(self.instance_dir, redistribute)

    def log_text(self) -> str:
        """The whole log of this node ("" before its first start)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def wait_log(self, line: str, timeout: float, *, after: int = 0) -> bool:
        """Wait until the log, from character ``after`` on, contains ``line``."""
        deadline = time.monotonic() + timeout
        while line not in self.log_text()[after:]:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def redistribute(xml: str) -> str:
    """Set ``redistribution-delay`` 0 for every address (the ``#`` address-setting)."""
    if "<redistribution-delay>" in xml:
        return xml
    return xml.replace(
        '<address-setting match="#">',
        '<address-setting match="#">\n            <redistribution-delay>0</redistribution-delay>',
        1,
    )


def cluster_url(user: str, password: str, nodes: Iterable[LocalArtemis]) -> str:
    """``artemis://user:password@host:port,host:port`` over ``nodes``, in that order."""
    hosts = ",".join(f"{node.stomp_host}:{node.stomp_port}" for node in nodes)
    return f"artemis://{quote(user, safe='')}:{quote(password, safe='')}@{hosts}"


class ArtemisCluster(Server):
    """A symmetric cluster of ``size`` local brokers with the harness's lifecycle.

    ``start()`` creates the instances (the first time), starts every node
    that is down and waits until each node's cluster bridges are connected.
    ``stop()``, ``kill()`` and ``close()`` act on every node; a single node
    is ``cluster.nodes[i]``, a :class:`ClusterNode` with the lifecycle of any
    local broker (``kill()`` it, ``start()`` it again: same journal, same
    ports). ``url`` lists the nodes in order; ``url_for(1, 0)`` in another.
    Options (``user``, ``password``, ``fsync``, ``java_memory``, ...) are
    those of :class:`~tests.harness.artemis.local.LocalArtemis`.
    """

    mode: ClassVar[str] = "local"

    def __init__(
        self,
        size: int = 2,
        *,
        user: str = "kew",
        password: str = "kew",
        cluster_user: str = "kew-cluster",
        cluster_password: str = "kew-cluster",
        java_memory: str = "384M",
        **options: Any,
    ) -> None:
        if size < 2:
            raise ValueError(f"a cluster needs at least 2 nodes, not {size}")
        self.size = size
        self.user = user
        self.password = password
        self.cluster_user = cluster_user
        self.cluster_password = cluster_password
        self.options = {"java_memory": java_memory, **options}
        self.nodes: list[ClusterNode] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(map(repr, self.nodes)) or 'not started'}>"

    @property
    def url(self) -> str:
        """The STOMP URL over every node, in order (valid after :meth:`start`)."""
        return cluster_url(self.user, self.password, self.nodes)

    def url_for(self, *order: int) -> str:
        """The STOMP URL over the nodes at indexes ``order``, e.g. ``url_for(1, 0)``."""
        return cluster_url(self.user, self.password, [self.nodes[i] for i in order])

    def is_running(self) -> bool:
        return bool(self.nodes) and all(node.is_running() for node in self.nodes)

    def stop(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.stop(timeout)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def log_tail(self, n: int = 50) -> str:
        return "\n".join(
            f"----- {node.name} -----\n{node.log_tail(n)}" for node in self.nodes if node.log_path
        )

    def _make_nodes(self) -> list[ClusterNode]:
        base = free_offset(span=self.size)
        offsets = [base + NODE_SPACING * i for i in range(self.size)]
        cores = [CORE_PORT + offset for offset in offsets]
        return [
            ClusterNode(
                name=f"kew-node-{i}",
                port_offset=offset,
                peers=[core for j, core in enumerate(cores) if j != i],
                cluster_user=self.cluster_user,
                cluster_password=self.cluster_password,
                user=self.user,
                password=self.password,
                **self.options,
            )
            for i, offset in enumerate(offsets)
        ]

    def _start(self) -> None:
        if not self.nodes:
            self.nodes = self._make_nodes()
        down = [node for node in self.nodes if not node.is_running()]
        marks = {id(node): len(node.log_text()) for node in down}
        try:
            with ThreadPoolExecutor(len(down)) as pool:
                list(pool.map(lambda node: node.start(), down))
        except BaseException:
            self.close(graceful=False)
            raise
        self.wait_connected(down, marks)

    def wait_connected(
        self, nodes: Sequence[ClusterNode] | None = None, marks: dict[int, int] | None = None
    ) -> None:
        """Wait until each node's cluster bridges to its peers are connected."""
        for node in self.nodes if nodes is None else nodes:
            after = (marks or {}).get(id(node), 0)
            if not _wait_bridges(node, len(node.peers), after, node.start_timeout):
                raise ServiceStartError(
                    f"cluster node {node.name} did not connect to its peers. Log:\n"
                    f"{node.log_tail(80)}"
                )

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def _close(self, graceful: bool) -> None:
        for node in self.nodes:
            node.close(graceful)
        self.nodes = []


def _wait_bridges(node: ClusterNode, count: int, after: int, timeout: float) -> bool:
    """Wait until ``node`` logged ``count`` bridge connections since character ``after``."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(CONNECTED_LINE)
    while len(pattern.findall(node.log_text()[after:])) < count:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
