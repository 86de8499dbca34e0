"""A server in a Docker container (testcontainers' ``PostgresContainer``).

The role and password are ``kew``/``kew``; the server runs with
``fsync=off``, ``full_page_writes=off`` and ``synchronous_commit=off``. Its
port is mapped to a host port, which may change when a stopped container
starts again. testcontainers is imported only when a container is made.
"""

from __future__ import annotations

from typing import Any

from tests.harness import containers
from tests.harness.postgres.base import PostgresServer
from tests.harness.services import ServiceStartError

__all__ = ["DockerPostgres"]

PORT = 5432


class DockerPostgres(PostgresServer):
    """A PostgreSQL container: stopped and killed as a container, data kept until close."""

    mode = "docker"

    _container: Any = None  # testcontainers' PostgresContainer

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
            self.user = self.superuser = "kew"
            self.password = "kew"
            self._container = self._new_container()
            self._container.start()  # waits until psql in the container connects
        else:
            self._container.get_wrapped_container().start()
        self._container.get_wrapped_container().reload()  # host ports may have changed
        self.host = self._container.get_container_host_ip()
        self.port = int(self._container.get_exposed_port(PORT))
        if not self.wait_connectable(self.start_timeout):
            raise ServiceStartError(
                f"the PostgreSQL container does not accept connections. Log:\n{self.log_tail(60)}"
            )

    def _close(self, graceful: bool) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()  # removes the container and its volumes

    def _new_container(self) -> Any:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers layout
            from testcontainers.postgres import PostgresContainer  # type: ignore[no-redef]

        container = PostgresContainer(
            self.image,
            username=self.user,
            password=self.password,
            dbname=self.dbname,
            driver=None,
        )
        return container.with_command(
            f"postgres -c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            f"-c max_connections={self.max_connections}"
        )
