"""The test harness (not shipped) that starts REAL services: PostgreSQL, Artemis, RabbitMQ.

- :class:`PostgresServer` and :class:`ArtemisServer` get a server from an env
  URL, a Docker container, or local binaries (``tests.harness.postgres`` and
  ``tests.harness.artemis``, one module per source). Both are
  :class:`~tests.harness.lifecycle.Server` subclasses, same lifecycle:
  ``start()``, ``stop()`` (data kept), ``kill()`` (a crash), ``restart()``,
  ``close()`` (stopped and removed), ``is_running()``, ``controllable``.
- :class:`RabbitServer` is a RabbitMQ node of the harness's own (Debian's
  ``rabbitmq-server``) or one given by URL (``tests.harness.rabbitmq``),
  same lifecycle.
- :func:`service_missing` skips a test (fails it on CI) with what to install.
- ``tests.harness.fixtures`` is a pytest plugin with session fixtures
  ``postgres_server``, ``postgres_url``, ``artemis_server``, ``artemis_url``,
  ``rabbitmq_server``, ``rabbitmq_url``::

      pytest_plugins = ["tests.harness.fixtures"]

See docs/testing.md. Nothing here imports Django.
"""

from tests.harness.artemis import ARTEMIS_VERSION, ArtemisServer, ensure_distribution
from tests.harness.lifecycle import Server
from tests.harness.postgres import PostgresServer, find_postgres_bindir
from tests.harness.rabbitmq import RabbitServer
from tests.harness.services import (
    ServiceStartError,
    ServiceUnavailable,
    docker_available,
    free_port,
    on_ci,
    service_missing,
    service_unsupported,
)

__all__ = [
    "ARTEMIS_VERSION",
    "ArtemisServer",
    "PostgresServer",
    "RabbitServer",
    "Server",
    "ServiceStartError",
    "ServiceUnavailable",
    "docker_available",
    "ensure_distribution",
    "find_postgres_bindir",
    "free_port",
    "on_ci",
    "service_missing",
    "service_unsupported",
]
