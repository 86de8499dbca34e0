"""The relay: publish committed outbox rows to the provider, confirmed and in order.

- ``publisher``: the ``Relay`` loop (claim, publish, mark, back off);
- ``claims``: lock and mark a batch of rows in one statement;
- ``order``: batches claimed by several threads publish in claim order;
- ``waiting``: sleep until new rows are notified (PostgreSQL) or a timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kew_django.lazy import lazy_exports

if TYPE_CHECKING:
    from kew_django.relay.publisher import Relay, RelayStats

__all__ = ["Relay", "RelayStats"]

if not TYPE_CHECKING:  # type checkers see the imports above; unknown names are errors
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {"Relay": "kew_django.relay.publisher", "RelayStats": "kew_django.relay.publisher"},
    )
