"""The providers the contract suite runs on: name -> factory.

A factory takes pytest's ``request`` and returns a connected ``Connector``;
the suite closes it. Add a provider by adding an entry here (with the
marks its service needs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from kew.providers.memory import MemoryProvider
from kew.qchan.spi import Connector


@dataclass(frozen=True)
class ProviderFactory:
    name: str
    make: Callable[[pytest.FixtureRequest], Connector]
    marks: tuple = field(default=())


def _memory(request: pytest.FixtureRequest) -> Connector:
    return MemoryProvider()


def _database(request: pytest.FixtureRequest) -> Connector:
    from kew_django.providers.database import DatabaseProvider

    return DatabaseProvider(lease=30.0)


def _artemis(request: pytest.FixtureRequest) -> Connector:
    from kew.providers import connect

    server = request.getfixturevalue("artemis_server")
    return connect(server.url)


FACTORIES: list[ProviderFactory] = [
    ProviderFactory("memory", _memory),
    ProviderFactory("artemis", _artemis, (pytest.mark.artemis,)),
    ProviderFactory("database", _database, (pytest.mark.django_db(transaction=True),)),
]
