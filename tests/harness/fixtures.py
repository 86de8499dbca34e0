"""Pytest plugin: real PostgreSQL, Artemis and RabbitMQ servers as session fixtures.

Load it from a ``conftest.py``::

    pytest_plugins = ["tests.harness.fixtures"]

Fixtures (all session-scoped, started the first time a test asks for them,
stopped at the end of the session):

``postgres_server``
    a started :class:`~tests.harness.postgres.PostgresServer`;
``postgres_url``
    its ``postgresql://user@127.0.0.1:port/kew`` URL;
``artemis_server``
    a started :class:`~tests.harness.artemis.ArtemisServer`;
``artemis_url``
    its ``artemis://user:password@127.0.0.1:port`` URL;
``rabbitmq_server``
    a started :class:`~tests.harness.rabbitmq.RabbitServer` (a node of its own);
``rabbitmq_url``
    its ``amqp://user:password@127.0.0.1:port/`` URL;
``rabbitmq_tls_server``
    a started :class:`~tests.harness.rabbitmq.local.LocalRabbit` with a TLS
    listener (``tls_url``, ``ca_path``; a node of its own beside
    ``rabbitmq_server``, with the same ``rabbitmq_server_options``);
``rabbitmq_cluster``
    a started :class:`~tests.harness.rabbitmq.cluster.RabbitCluster` of three
    nodes (``rabbitmq_cluster_options`` to change it);
``artemis_cluster``
    a started :class:`~tests.harness.artemis.cluster.ArtemisCluster` of two
    nodes (``artemis_cluster_options`` to change it);
``artemis_pair``
    a started live/backup :class:`~tests.harness.artemis.ha.ArtemisPair`
    (``artemis_pair_options``).

``prometheus_factory`` (per test) starts a real Prometheus
(:class:`~tests.harness.prometheus.PrometheusServer`) scraping the
``host:port`` targets it is called with, and stops it after the test.

``postgres_server_options`` / ``artemis_server_options`` / ``rabbitmq_server_options``
(session, ``{}``) are
the constructor keyword arguments; override them in a conftest.py to change
e.g. the broker's credentials or ``artemis create`` arguments.

A service that cannot be had skips the tests that need it (fails them when
``CI`` is true), saying what to install; outside CI such a run then exits
non-zero unless ``KEW_TEST_PARTIAL=1`` (see :mod:`tests.harness.summary`, which
ends every run with its skips counted by reason). Tests using these fixtures get the
``postgres`` / ``artemis`` / ``rabbitmq`` marker automatically (``-m "not artemis"`` works).
When such a test fails, the service's log tail is added to its report. A test
that killed or stopped a shared server leaves it to the harness: the next
test that uses it finds it running again (same data). At the end of the
session each server is closed: stopped, and everything made for it removed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.artemis import ArtemisServer
from tests.harness.artemis.cluster import ArtemisCluster
from tests.harness.artemis.ha import ArtemisPair
from tests.harness.lifecycle import Server
from tests.harness.postgres import PostgresServer
from tests.harness.prometheus import PrometheusServer
from tests.harness.rabbitmq import LocalRabbit, RabbitServer
from tests.harness.rabbitmq.cluster import RabbitCluster
from tests.harness.rabbitmq.url import ENV_URL as RABBITMQ_ENV_URL
from tests.harness.services import ServiceUnavailable, service_missing, service_unsupported

# the run's closing count of skips, and the exit status of a partial run
pytest_plugins = ["tests.harness.summary"]

POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url"})
ARTEMIS_FIXTURES = frozenset({"artemis_server", "artemis_url"})
CLUSTER_FIXTURES = frozenset({"artemis_cluster"})
PAIR_FIXTURES = frozenset({"artemis_pair"})
RABBITMQ_FIXTURES = frozenset({"rabbitmq_server", "rabbitmq_url"})
RABBITMQ_CLUSTER_FIXTURES = frozenset({"rabbitmq_cluster"})
RABBITMQ_TLS_FIXTURES = frozenset({"rabbitmq_tls_server"})
# (server key, fixtures that use it, title of its log section)
SERVERS = (
    ("artemis", ARTEMIS_FIXTURES, "Artemis broker log"),
    ("postgres", POSTGRES_FIXTURES, "PostgreSQL server log"),
    ("artemis_cluster", CLUSTER_FIXTURES, "Artemis cluster logs"),
    ("artemis_pair", PAIR_FIXTURES, "Artemis live/backup logs"),
    ("rabbitmq", RABBITMQ_FIXTURES, "RabbitMQ node log"),
    ("rabbitmq_cluster", RABBITMQ_CLUSTER_FIXTURES, "RabbitMQ cluster logs"),
    ("rabbitmq_tls", RABBITMQ_TLS_FIXTURES, "RabbitMQ TLS node log"),
)
LOG_LINES = 60

_servers_key = pytest.StashKey[dict[str, Server]]()


def _servers(config: pytest.Config) -> dict[str, Server]:
    return config.stash.setdefault(_servers_key, {})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "artemis: needs a real Apache Artemis broker (started by the harness)"
    )
    config.addinivalue_line(
        "markers", "rabbitmq: needs a real RabbitMQ broker (started by the harness)"
    )
    config.addinivalue_line(
        "markers", "postgres: needs a real PostgreSQL server (started by the harness)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if names & (ARTEMIS_FIXTURES | CLUSTER_FIXTURES | PAIR_FIXTURES):
            item.add_marker(pytest.mark.artemis)
        if names & (RABBITMQ_FIXTURES | RABBITMQ_CLUSTER_FIXTURES | RABBITMQ_TLS_FIXTURES):
            item.add_marker(pytest.mark.rabbitmq)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # a previous test may have killed/stopped a shared server: bring it back
    names = set(getattr(item, "fixturenames", ()))
    for key, fixtures, _ in SERVERS:
        server = _servers(item.config).get(key)
        if server is None or not names & fixtures or not server.controllable:
            continue
        if not server.is_running():
            server.start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        names = set(getattr(item, "fixturenames", ()))
        servers = _servers(item.config)
        for key, fixtures, title in SERVERS:
            server = servers.get(key)
            if server is not None and names & fixtures:
                tail = server.log_tail(LOG_LINES)
                if tail:
                    report.sections.append((f"{title} (last {LOG_LINES} lines)", tail))
    return report


def _start_or_skip(server: Server) -> None:
    try:
        server.start()
    except ServiceUnavailable as exc:
        missing = exc
    else:
        return
    # outside the except block: the skip/fail message stands alone
    service_missing(missing.name, missing.install_hint)


@pytest.fixture(scope="session")
def postgres_server_options() -> dict[str, Any]:
    """Keyword arguments for :class:`PostgresServer`; override it in a conftest.py."""
    return {}


@pytest.fixture(scope="session")
def artemis_server_options() -> dict[str, Any]:
    """Keyword arguments for :class:`ArtemisServer`; override it in a conftest.py."""
    return {}


@contextlib.contextmanager
def _registered(request: pytest.FixtureRequest, name: str, server: Server) -> Iterator[None]:
    """Start ``server`` (or skip/fail), list it for log tails, and close it after."""
    _start_or_skip(server)
    _servers(request.config)[name] = server
    try:
        yield
    finally:
        _servers(request.config).pop(name, None)
        server.close()


@pytest.fixture(scope="session")
def postgres_server(
    request: pytest.FixtureRequest, postgres_server_options: dict[str, Any]
) -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (see tests.harness.postgres)."""
    server = PostgresServer(**postgres_server_options)
    with _registered(request, "postgres", server):
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql://user[:password]@host:port/dbname`` of :func:`postgres_server`."""
    return postgres_server.url


@pytest.fixture(scope="session")
def artemis_server(
    request: pytest.FixtureRequest, artemis_server_options: dict[str, Any]
) -> Iterator[ArtemisServer]:
    """A real Artemis broker for the whole session (see tests.harness.artemis)."""
    server = ArtemisServer(**artemis_server_options)
    with _registered(request, "artemis", server):
        yield server


@pytest.fixture(scope="session")
def artemis_url(artemis_server: ArtemisServer) -> str:
    """``artemis://user:password@host:port`` (STOMP) of :func:`artemis_server`."""
    return artemis_server.url


@pytest.fixture(scope="session")
def rabbitmq_server_options() -> dict[str, Any]:
    """Keyword arguments for :class:`RabbitServer`; override it in a conftest.py."""
    return {}


@pytest.fixture(scope="session")
def rabbitmq_server(
    request: pytest.FixtureRequest, rabbitmq_server_options: dict[str, Any]
) -> Iterator[RabbitServer]:
    """A real RabbitMQ node for the whole session (see tests.harness.rabbitmq)."""
    server = RabbitServer(**rabbitmq_server_options)
    with _registered(request, "rabbitmq", server):
        yield server


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_server: RabbitServer) -> str:
    """``amqp://user:password@host:port/`` of :func:`rabbitmq_server`."""
    return rabbitmq_server.url


@pytest.fixture(scope="session")
def rabbitmq_tls_server(
    request: pytest.FixtureRequest, rabbitmq_server_options: dict[str, Any]
) -> Iterator[LocalRabbit]:
    """A local RabbitMQ node with a TLS listener and a throwaway CA, for the session.

    Skipped (also on CI) when ``KEW_TEST_RABBITMQ_URL`` gives the broker:
    the harness cannot give that one a listener and a CA of its own.
    """
    if os.environ.get(RABBITMQ_ENV_URL):
        service_unsupported(f"no TLS listener of the harness's own with {RABBITMQ_ENV_URL}")
    server = LocalRabbit(tls=True, **rabbitmq_server_options)
    with _registered(request, "rabbitmq_tls", server):
        yield server


@pytest.fixture(scope="session")
def rabbitmq_cluster_options() -> dict[str, Any]:
    """Keyword arguments for :class:`RabbitCluster` (``size`` 3 by default)."""
    return {}


@pytest.fixture(scope="session")
def rabbitmq_cluster(
    request: pytest.FixtureRequest, rabbitmq_cluster_options: dict[str, Any]
) -> Iterator[RabbitCluster]:
    """A cluster of local RabbitMQ nodes for the session (see tests.harness.rabbitmq.cluster).

    A node a test killed or stopped is started again before the next test
    that uses the cluster (same data, same ports).
    """
    cluster = RabbitCluster(**rabbitmq_cluster_options)
    with _registered(request, "rabbitmq_cluster", cluster):
        yield cluster


@pytest.fixture(scope="session")
def artemis_cluster_options() -> dict[str, Any]:
    """Keyword arguments for :class:`ArtemisCluster` (``size`` 2 by default)."""
    return {}


@pytest.fixture(scope="session")
def artemis_cluster(
    request: pytest.FixtureRequest, artemis_cluster_options: dict[str, Any]
) -> Iterator[ArtemisCluster]:
    """A symmetric cluster of local brokers for the session (see tests.harness.artemis.cluster).

    A node a test killed or stopped is started again before the next test
    that uses the cluster (same journal, same ports).
    """
    cluster = ArtemisCluster(**artemis_cluster_options)
    with _registered(request, "artemis_cluster", cluster):
        yield cluster


@pytest.fixture(scope="session")
def artemis_pair_options() -> dict[str, Any]:
    """Keyword arguments for :class:`ArtemisPair` (e.g. ``{"failback": True}``)."""
    return {}


@pytest.fixture(scope="session")
def artemis_pair(
    request: pytest.FixtureRequest, artemis_pair_options: dict[str, Any]
) -> Iterator[ArtemisPair]:
    """A replicated live/backup pair for the session (see tests.harness.artemis.ha).

    A node a test killed is started again before the next test that uses
    the pair; after a failover it comes back as the passive one, so find
    the live broker with ``artemis_pair.active``.
    """
    pair = ArtemisPair(**artemis_pair_options)
    with _registered(request, "artemis_pair", pair):
        yield pair


@pytest.fixture
def prometheus_factory() -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Return ``start(targets)``: a started Prometheus scraping them every second."""
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        server = PrometheusServer(targets)
        try:
            server.start()
        except ServiceUnavailable as exc:
            service_missing(exc.name, exc.install_hint)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
