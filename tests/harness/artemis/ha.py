"""A live/backup pair of Artemis brokers with replication, on one host.

:class:`ArtemisPair` makes a primary (``artemis create --clustered
--replicated``) and a backup (``... --replicated --backup``) that know
each other by static connectors. The primary replicates its journal to
the backup (messages, scheduled messages, the duplicate-id cache); when
the primary dies the backup activates with that journal and opens its
STOMP acceptor, which a backup keeps closed until then. A client lists
both in its URL (``pair.url``: primary first) and the provider fails over
to whichever answers.

The primary runs with ``check-for-active-server``: started again after a
failover it does not activate beside the backup (split brain) but
replicates from it. With ``failback=True`` the backup has
``allow-failback`` and hands the role back once the primary is in sync;
without it the old primary stays a backup.

NOTE: a pair of two cannot tell a dead primary from a lost network (no
quorum of three); production pairs want a third voter or the pluggable
lock manager. On one host the network never splits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self

from tests.harness.artemis.base import CORE_PORT
from tests.harness.artemis.cluster import (
    NODE_SPACING,
    ClusterNode,
    cluster_url,
    edit_broker_xml,
)
from tests.harness.artemis.instance import free_offset
from tests.harness.lifecycle import Server
from tests.harness.services import ServiceStartError, wait_for_port

__all__ = ["ArtemisPair", "PairNode"]

ACTIVE_LINE = "AMQ221007"  # "Server is now active" (the primary, or a backup taking over)
SYNCED_LINE = "AMQ221024"  # "Backup server ... is synchronized with primary server"


class PairNode(ClusterNode):
    """The primary or the backup of a pair: ready when active, or (a backup) when in sync."""

    def __init__(self, *, role: str, failback: bool, **options: Any) -> None:
        role_args = ["--replicated", *(["--backup"] if role == "backup" else [])]
        super().__init__(create_args=role_args, **options)
        self.role = role
        self.failback = failback
        self._started_at = 0

    def _configure(self) -> None:
        super()._configure()
        assert self.instance_dir is not None
        edit_broker_xml(self.instance_dir, self._ha_policy)

    def _ha_policy(self, xml: str) -> str:
        if self.role == "primary":
            policy = "<primary>\n<check-for-active-server>true</check-for-active-server>"
            return xml.replace("<primary>", policy, 1)
        failback = "<allow-failback>true</allow-failback>" if self.failback else ""
        return xml.replace("<backup/>", f"<backup>{failback}</backup>", 1)

    def start(self) -> Self:
        self._started_at = len(self.log_text())
        return super().start()

    def _ready(self, text: str) -> bool:
        if ACTIVE_LINE in text:
            return wait_for_port(self.stomp_host, self.stomp_port, 5)
        return SYNCED_LINE in text  # a passive backup (or old primary) in sync

    def is_active(self) -> bool:
        """Has this node been active (serving clients) since its last start?"""
        return self.is_running() and ACTIVE_LINE in self.log_text()[self._started_at :]


class ArtemisPair(Server):
    """A primary and its replicating backup, with the harness's lifecycle.

    ``start()`` starts the primary, then the backup, and returns when the
    backup is in sync. ``primary`` and ``backup`` are :class:`PairNode`\\ s:
    ``pair.primary.kill()`` is a crash of the live broker, and
    ``pair.wait_active(pair.backup)`` waits for the failover. ``url`` lists
    the primary first, then the backup.
    """

    mode: ClassVar[str] = "local"

    def __init__(
        self,
        *,
        failback: bool = False,
        user: str = "kew",
        password: str = "kew",
        cluster_user: str = "kew-cluster",
        cluster_password: str = "kew-cluster",
        java_memory: str = "384M",
        **options: Any,
    ) -> None:
        self.failback = failback
        self.user = user
        self.password = password
        self.cluster_user = cluster_user
        self.cluster_password = cluster_password
        self.options = {"java_memory": java_memory, **options}
        self.nodes: list[PairNode] = []

    @property
    def primary(self) -> PairNode:
        return self.nodes[0]

    @property
    def backup(self) -> PairNode:
        return self.nodes[1]

    @property
    def active(self) -> PairNode:
        """The node serving clients now (the primary until a failover)."""
        for node in self.nodes:
            if node.is_active():
                return node
        raise ServiceStartError(f"no active broker in the pair. Logs:\n{self.log_tail(40)}")

    @property
    def passive(self) -> PairNode:
        """The node replicating the active one."""
        active = self.active
        return next(node for node in self.nodes if node is not active)

    @property
    def url(self) -> str:
        """The STOMP URL over the primary, then the backup."""
        return cluster_url(self.user, self.password, self.nodes)

    def is_running(self) -> bool:
        return bool(self.nodes) and all(node.is_running() for node in self.nodes)

    def stop(self, timeout: float = 30.0) -> None:
        for node in reversed(self.nodes):
            node.stop(timeout)

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def log_tail(self, n: int = 50) -> str:
        return "\n".join(
            f"----- {node.name} ({node.role}) -----\n{node.log_tail(n)}"
            for node in self.nodes
            if node.log_path
        )

    def wait_active(self, node: PairNode, timeout: float = 60.0) -> None:
        """Wait until ``node`` is active and its STOMP port answers (a failover, a failback)."""
        self._wait(node.is_active, timeout, f"{node.name} to become active")
        if not wait_for_port(node.stomp_host, node.stomp_port, timeout):
            raise ServiceStartError(f"{node.name} is active but its STOMP port does not answer")

    def wait_synced(self, node: PairNode, timeout: float = 60.0) -> None:
        """Wait until ``node`` (a passive broker) has replicated the active one's journal."""
        self._wait(
            lambda: SYNCED_LINE in node.log_text()[node._started_at :],
            timeout,
            f"{node.name} to synchronize",
        )

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                raise ServiceStartError(f"timed out waiting for {what}. Logs:\n{self.log_tail(40)}")
            time.sleep(0.1)

    def _make_nodes(self) -> list[PairNode]:
        base = free_offset(span=2)
        offsets = (base, base + NODE_SPACING)
        cores = [CORE_PORT + offset for offset in offsets]
        return [
            PairNode(
                role=role,
                failback=self.failback,
                name=f"kew-{role}",
                port_offset=offset,
                peers=[cores[1 - i]],
                cluster_user=self.cluster_user,
                cluster_password=self.cluster_password,
                user=self.user,
                password=self.password,
                **self.options,
            )
            for i, (role, offset) in enumerate(zip(("primary", "backup"), offsets, strict=True))
        ]

    def _start(self) -> None:
        if not self.nodes:
            self.nodes = self._make_nodes()
        try:
            for node in self._start_order():
                node.start()
        except BaseException:
            self.close(graceful=False)
            raise

    def _start_order(self) -> Sequence[PairNode]:
        return [node for node in self.nodes if not node.is_running()]

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def _close(self, graceful: bool) -> None:
        for node in reversed(self.nodes):
            node.close(graceful)
        self.nodes = []
