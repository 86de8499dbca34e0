"""A throwaway cluster made with the local server binaries.

:meth:`LocalPostgres.start` first runs ``initdb`` in a temp dir (superuser
``postgres``, trust authentication, no locale, UTF8), starts the server with
``pg_ctl`` on a free port of 127.0.0.1 with ``fsync=off`` and creates the
database. :meth:`~LocalPostgres.stop` (``pg_ctl stop -m fast``) and
:meth:`~LocalPostgres.kill` (SIGKILL of the postmaster and each of its children) keep
the cluster, so the next start runs it again on the same port;
:meth:`~LocalPostgres.close` deletes it. ``initdb`` refuses to run as root:
as root the server runs as the unprivileged ``postgres`` user.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.harness.postgres.base import PostgresServer
from tests.harness.postgres.bindir import INSTALL_HINT, find_postgres_bindir
from tests.harness.postgres.cluster import Cluster
from tests.harness.services import ServiceStartError, ServiceUnavailable, free_port, tail

__all__ = ["LocalPostgres"]


class LocalPostgres(PostgresServer):
    """A PostgreSQL server process of the harness's own; needs the server binaries."""

    mode = "local"

    _cluster: Cluster | None = None

    def is_running(self) -> bool:
        return self._cluster is not None and self._cluster.pid() is not None

    def stop(self, timeout: float = 30.0) -> None:
        if self._cluster is not None:
            self._cluster.stop(timeout)

    def kill(self) -> None:
        if self._cluster is not None:
            self._cluster.kill()

    def log_tail(self, n: int = 50) -> str:
        if self.log_path is not None and self.log_path.exists():
            return tail(self.log_path.read_text(errors="replace"), n)
        return ""

    def _start(self) -> None:
        if self._cluster is not None:
            self._launch(attempts=1)  # the same cluster, on the same port
            return
        bindir = find_postgres_bindir()
        if bindir is None:
            raise ServiceUnavailable("PostgreSQL", INSTALL_HINT)
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ServiceUnavailable(
                "PostgreSQL", "psycopg is needed: `pip install 'psycopg[binary]'`"
            ) from exc
        self.user = self.superuser
        self.password = None
        self._cluster = Cluster(bindir, Path(tempfile.mkdtemp(prefix="kew-pg-")))
        self.data_dir = self._cluster.data_dir
        self.log_path = self._cluster.log_path
        try:
            self._cluster.initdb(self.superuser, self.max_connections)
            self._launch(attempts=3)
            self.create_database(self.dbname)
        except BaseException:
            self.close(graceful=False)
            raise

    def _close(self, graceful: bool) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            if graceful:
                cluster.stop(timeout=60)
            else:
                cluster.kill()
            shutil.rmtree(cluster.directory, ignore_errors=True)
        self.data_dir = self.log_path = None

    def _launch(self, attempts: int) -> None:
        """Start the cluster and wait until it accepts connections (or raise with its log)."""
        assert self._cluster is not None
        last_error = ""
        for _ in range(attempts):
            if attempts > 1:
                self.port = free_port(self.host)
            result = self._cluster.start(self.port, self.start_timeout)
            if result.returncode == 0 and self.wait_connectable(self.start_timeout):
                return
            last_error = f"pg_ctl start exited {result.returncode}:\n{result.stdout}{result.stderr}"
            log = self.log_tail(40)
            self._cluster.stop(timeout=60)
            if "already in use" not in log:  # only a port race is worth another try
                break
        raise ServiceStartError(
            f"PostgreSQL did not start.\n{last_error}\nServer log:\n{self.log_tail(60)}"
        )
