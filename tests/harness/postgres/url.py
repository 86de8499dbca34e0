"""A server given by ``KEW_TEST_POSTGRES_URL``: used as is, never controlled.

``KEW_TEST_POSTGRES_URL`` is ``postgresql://user:password@host:port/dbname``;
the role must be allowed to create databases (pytest-django makes
``test_<name>``).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from tests.harness.postgres.base import PostgresServer, redact
from tests.harness.services import ServiceStartError, service_unsupported

__all__ = ["ENV_URL", "UrlPostgres"]

ENV_URL = "KEW_TEST_POSTGRES_URL"


class UrlPostgres(PostgresServer):
    """The external server of ``$KEW_TEST_POSTGRES_URL``.

    :meth:`start` checks that it accepts a connection. :meth:`stop`,
    :meth:`kill` and :meth:`restart` skip the calling test; :meth:`close`
    leaves the server alone.
    """

    mode = "url"
    controllable = False

    _checked = False

    def is_running(self) -> bool:
        """True once :meth:`start` found the server accepting connections."""
        return self._checked

    def stop(self, timeout: float = 30.0) -> None:
        service_unsupported(f"cannot stop the external PostgreSQL given by {ENV_URL}")

    def kill(self) -> None:
        service_unsupported(f"cannot kill the external PostgreSQL given by {ENV_URL}")

    def log_tail(self, n: int = 50) -> str:
        return ""

    def _start(self) -> None:
        url = os.environ.get(ENV_URL, "")
        parts = urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ServiceStartError(f"{ENV_URL} must be a postgresql:// URL, got {redact(url)}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = unquote(parts.username or "") or self.superuser
        self.superuser = self.user
        self.password = unquote(parts.password) if parts.password is not None else None
        self.dbname = unquote(parts.path.lstrip("/")) or self.dbname
        try:
            with self.connect() as conn:
                conn.execute("select 1")
        except Exception as exc:
            raise ServiceStartError(
                f"{ENV_URL}={redact(url)} does not accept connections: {exc}"
            ) from exc
        self._checked = True

    def _close(self, graceful: bool) -> None:
        self._checked = False
