"""Fixtures of the provider contract suite: one connector per provider."""

import uuid

import pytest

from tests.contract.providers import FACTORIES


@pytest.fixture(params=[pytest.param(f, id=f.name, marks=f.marks) for f in FACTORIES])
def connector(request):
    """A connected provider; the contract tests run once per provider."""
    connector = request.param.make(request)
    yield connector
    connector.close()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"contract.{uuid.uuid4().hex[:12]}"
