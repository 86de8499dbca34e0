"""A real PostgreSQL server for tests.

``PostgresServer(**options)`` gets a server from the first source that
:func:`pick_source` finds, in this order:

1. ``KEW_TEST_POSTGRES_URL`` (``postgresql://user:pass@host:port/db``), used
   as is after checking that it answers
   (:class:`~tests.harness.postgres.url.UrlPostgres`);
2. a Docker container (testcontainers), if a Docker engine answers a ping
   and ``use_docker`` is not False
   (:class:`~tests.harness.postgres.docker.DockerPostgres`);
3. a throwaway cluster made with the local server binaries (``initdb``,
   ``pg_ctl``, ``postgres``, see :func:`find_postgres_bindir`) in a temp dir,
   on a free port of 127.0.0.1, with ``fsync=off`` and trust authentication
   (:class:`~tests.harness.postgres.local.LocalPostgres`).

If none is possible, :meth:`~PostgresServer.start` raises
:class:`~tests.harness.services.ServiceUnavailable`, which says what to
install. Every source has the lifecycle of :mod:`tests.harness.lifecycle`:
``stop()`` keeps the data, ``kill()`` is a crash, ``start()`` brings the same
server back, ``close()`` removes it. The local and Docker servers run with
``synchronous_commit=off``: a ``kill()`` may lose what was committed in the
last ~0.6 s (three times ``wal_writer_delay``), as PostgreSQL documents. This
package never imports Django.
"""

from __future__ import annotations

import os

from tests.harness.postgres.base import PostgresServer
from tests.harness.postgres.bindir import find_postgres_bindir
from tests.harness.postgres.local import LocalPostgres
from tests.harness.postgres.url import ENV_URL, UrlPostgres
from tests.harness.services import docker_available

__all__ = ["LocalPostgres", "PostgresServer", "UrlPostgres", "find_postgres_bindir", "pick_source"]


def pick_source(*, use_docker: bool | None = None) -> type[PostgresServer]:
    """The class ``PostgresServer()`` makes: URL from the env, else Docker, else local.

    Docker is tried unless ``use_docker`` is False and only if an engine
    answers a ping (``KEW_TEST_NO_DOCKER=1`` turns it off).
    """
    if os.environ.get(ENV_URL):
        return UrlPostgres
    if use_docker is not False and docker_available():
        from tests.harness.postgres.docker import DockerPostgres

        return DockerPostgres
    return LocalPostgres
