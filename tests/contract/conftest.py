"""Fixtures of the provider contract suite: one provider per provider."""

import uuid

import pytest

from tests.contract.providers import FACTORIES


@pytest.fixture(params=[pytest.param(f, id=f.name, marks=f.marks) for f in FACTORIES])
def provider(request):
    """A connected provider; the contract tests run once per provider."""
    provider = request.param.make(request)
    yield provider
    provider.close()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"contract.{uuid.uuid4().hex[:12]}"
