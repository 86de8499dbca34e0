"""The providers the contract suite runs on: name -> factory.

A factory takes pytest's ``request`` and returns a connected ``Provider``;
the suite closes it. Add a provider by adding an entry here (with the
marks its service needs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from kew.providers.base import Provider
from kew.providers.memory import MemoryProvider


@dataclass(frozen=True)
class ProviderFactory:
    name: str
    make: Callable[[pytest.FixtureRequest], Provider]
    marks: tuple = field(default=())


def _memory(request: pytest.FixtureRequest) -> Provider:
    return MemoryProvider()


def _database(request: pytest.FixtureRequest) -> Provider:
    from kew_django.providers.database import DatabaseProvider

    return DatabaseProvider(lease=30.0)


def _artemis(request: pytest.FixtureRequest) -> Provider:
    from kew.providers import connect

    server = request.getfixturevalue("artemis_server")
    return connect(server.url)


def _rabbitmq(request: pytest.FixtureRequest) -> Provider:
    from kew.providers import connect

    server = request.getfixturevalue("rabbitmq_server")
    return connect(server.url)


FACTORIES: list[ProviderFactory] = [
    ProviderFactory("memory", _memory),
    ProviderFactory("artemis", _artemis, (pytest.mark.artemis,)),
    ProviderFactory("rabbitmq", _rabbitmq, (pytest.mark.rabbitmq,)),
    ProviderFactory("database", _database, (pytest.mark.django_db(transaction=True),)),
]
