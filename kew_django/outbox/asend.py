"""Sending from async code: ``Channel.asend`` writes its row in the caller's transaction.

Django's transactions are synchronous: an atomic block lives on one thread,
on that thread's connection. ``asend`` therefore runs ``send`` through
``sync_to_async(thread_sensitive=True)``, which runs it on the thread that
holds the caller's atomic block when the async code was reached from that
thread through ``async_to_sync`` (Django's async ORM methods land on the
same thread, so ``acreate`` and ``asend`` share the transaction). With no
atomic block there, the row commits at once, as ``send`` does in autocommit.
See docs/async.md for the patterns.

An event loop started inside an atomic block on its own thread
(``asyncio.run`` in a transaction) cannot reach that transaction:
asgiref would run ``send`` on another thread, in a separate transaction.
``asend`` raises ``CannotJoinTransaction`` there instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import sync_to_async
from django.apps import apps
from django.db import connections, router

from kew_django.errors import CannotJoinTransaction

T = TypeVar("T")
R = TypeVar("R")


async def in_callers_transaction(
    write: Callable[..., R], /, *args: Any, using: str | None = None, **kwargs: Any
) -> R:
    """Run the sync ``write`` (``send``, ``publish``) where the caller's transaction is.

    Raises ``CannotJoinTransaction`` (nothing written) when this event loop
    runs inside an atomic block on its own thread.
    """
    db = using or router.db_for_write(apps.get_model("kew_django", "OutboxMessage"))
    # Reading the flag does no I/O; a loop thread has an atomic block open only when
    # the loop was started inside one (Django refuses the ORM on a loop's thread).
    if connections[db].in_atomic_block:
        raise CannotJoinTransaction(
            f"{write.__qualname__} was awaited on an event loop started inside "
            f"transaction.atomic() on the same thread (database {db!r}); it cannot join "
            "that transaction. Call the sync method there, or reach the async code "
            "through asgiref's async_to_sync (see docs/async.md)."
        )
    return await sync_to_async(write, thread_sensitive=True)(*args, using=using, **kwargs)


class AsyncSending(Generic[T]):
    """``asend`` and ``asend_many`` for ``Channel``: ``send`` and ``send_many`` awaited."""

    if TYPE_CHECKING:

        def send(
            self,
            data: T,
            *,
            properties: Mapping[str, str] | None = None,
            using: str | None = None,
        ) -> Any: ...

        def send_many(
            self,
            items: Iterable[T],
            *,
            properties: Mapping[str, str] | None = None,
            using: str | None = None,
        ) -> list[Any]: ...

    async def asend(
        self,
        data: T,
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ) -> Any:
        """Write ``data`` to the outbox in the caller's transaction (``send`` from async code)."""
        return await in_callers_transaction(self.send, data, properties=properties, using=using)

    async def asend_many(
        self,
        items: Iterable[T],
        *,
        properties: Mapping[str, str] | None = None,
        using: str | None = None,
    ) -> list[Any]:
        """Write every item to the outbox in the caller's transaction; return the rows."""
        return await in_callers_transaction(
            self.send_many, list(items), properties=properties, using=using
        )
