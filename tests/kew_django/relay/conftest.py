"""The relay's tests send through the outbox: the default provider with ``direct=false``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _outbox_sends(outbox_sends) -> None:
    """Pin every test here to the outbox path (direct sends leave the relay nothing to do)."""
