"""A broker in a Docker container of ``apache/activemq-artemis`` (testcontainers).

The image takes ``ARTEMIS_USER`` and ``ARTEMIS_PASSWORD``; STOMP (61613) and
core (61616) are mapped to host ports, which may change when a stopped
container starts again. testcontainers is imported only when a container is
made, so this module costs nothing without Docker.
"""

from __future__ import annotations

import time
from typing import Any

from tests.harness import containers
from tests.harness.artemis.base import CORE_PORT, READY_LINE, STOMP_PORT, ArtemisServer
from tests.harness.services import ServiceStartError, tail, wait_for_port

__all__ = ["DockerArtemis"]


class DockerArtemis(ArtemisServer):
    """An Artemis container: stopped and killed as a container, journal kept until close."""

    mode = "docker"

    _container: Any = None  # testcontainers.core.container.DockerContainer
    _starts = 0  # READY_LINE appears once per start in the container's log

    def is_running(self) -> bool:
        return containers.is_running(self._container)

    def stop(self, timeout: float = 30.0) -> None:
        if self._container is not None:
            self._container.get_wrapped_container().stop(timeout=int(timeout))

    def kill(self) -> None:
        if self._container is not None:
            self._container.get_wrapped_container().kill()

    def log_tail(self, n: int = 50) -> str:
        return containers.log_tail(self._container, n)

    def _start(self) -> None:
        if self._container is None:
            from testcontainers.core.container import DockerContainer

            self._container = (
                DockerContainer(self.image)
                .with_env("ARTEMIS_USER", self.user)
                .with_env("ARTEMIS_PASSWORD", self.password)
                .with_exposed_ports(STOMP_PORT, CORE_PORT)
            )
            self._starts = 0
            self._container.start()
        else:
            self._container.get_wrapped_container().start()
        self._wait_ready()

    def _close(self, graceful: bool) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()  # removes the container and its volumes

    def _wait_ready(self) -> None:
        self._starts += 1
        deadline = time.monotonic() + self.start_timeout
        while (text := containers.log_text(self._container)).count(READY_LINE) < self._starts:
            if time.monotonic() >= deadline:
                raise ServiceStartError(
                    f"the Artemis container did not log {READY_LINE} within "
                    f"{self.start_timeout:.0f} s. Log:\n{tail(text, 80)}"
                )
            time.sleep(0.2)
        self._container.get_wrapped_container().reload()  # host ports may have changed
        self.stomp_host = self._container.get_container_host_ip()
        self.stomp_port = int(self._container.get_exposed_port(STOMP_PORT))
        self.core_port = int(self._container.get_exposed_port(CORE_PORT))
        if not wait_for_port(self.stomp_host, self.stomp_port, timeout=self.start_timeout):
            raise ServiceStartError("the Artemis container's STOMP port does not answer")
