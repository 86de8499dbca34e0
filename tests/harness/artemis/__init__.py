"""A real Apache ActiveMQ Artemis broker for tests.

``ArtemisServer(**options)`` gets a broker from the first source that
:func:`pick_source` finds, in this order:

1. ``KEW_TEST_ARTEMIS_URL`` (``artemis://user:password@host:port``, the STOMP
   port), used as is after checking that the port answers
   (:class:`~tests.harness.artemis.url.UrlArtemis`);
2. a Docker container of ``apache/activemq-artemis`` (testcontainers), if a
   Docker engine answers a ping and ``use_docker`` is not False
   (:class:`~tests.harness.artemis.docker.DockerArtemis`);
3. the binary distribution, fetched once with ``mvn`` into
   ``$KEW_CACHE_DIR`` or ``~/.cache/kew``
   (:mod:`~tests.harness.artemis.distribution`), and a throwaway instance on
   free ports of 127.0.0.1 (:class:`~tests.harness.artemis.local.LocalArtemis`).

Every source has the lifecycle of :mod:`tests.harness.lifecycle`: ``stop()``
keeps the journal, ``kill()`` is a crash, ``start()`` brings the same broker
back, ``close()`` removes it. This package never imports Django.
"""

from __future__ import annotations

import os

from tests.harness.artemis.base import ArtemisServer
from tests.harness.artemis.distribution import ARTEMIS_VERSION, cache_dir, ensure_distribution
from tests.harness.artemis.local import LocalArtemis
from tests.harness.artemis.url import ENV_URL, UrlArtemis
from tests.harness.services import docker_available

__all__ = [
    "ARTEMIS_VERSION",
    "ArtemisServer",
    "LocalArtemis",
    "UrlArtemis",
    "cache_dir",
    "ensure_distribution",
    "pick_source",
]


def pick_source(*, use_docker: bool | None = None) -> type[ArtemisServer]:
    """The class ``ArtemisServer()`` makes: URL from the env, else Docker, else local.

    Docker is tried unless ``use_docker`` is False and only if an engine
    answers a ping (``KEW_TEST_NO_DOCKER=1`` turns it off).
    """
    if os.environ.get(ENV_URL):
        return UrlArtemis
    if use_docker is not False and docker_available():
        from tests.harness.artemis.docker import DockerArtemis

        return DockerArtemis
    return LocalArtemis
