"""Sending from async code: ``Channel.asend`` writes its row in the caller's transaction.

Django's transactions are synchronous: an atomic block lives on one thread,
on that thread's connection. ``asend`` runs ``send`` through
``sync_to_async(thread_sensitive=True)``, which asgiref runs on the
caller's sync thread: the thread that reached this async code through
``async_to_sync`` (inside its atomic block, if it has one), a Django
request's thread under ASGI, or a Kew worker's thread in an async handler.
Django's async ORM methods land on that same thread, so ``acreate`` and
``asend`` share its transaction; with no atomic block there, the row
commits at once, as ``send`` does in autocommit. See docs/async.md.

An event loop of its own (``asyncio.run``, also inside an atomic block)
has no such thread: asgiref would run ``send`` on a shared thread, in a
transaction of its own. ``asend`` raises ``CannotJoinTransaction`` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async

from kew_django.errors import CannotJoinTransaction

T = TypeVar("T")
R = TypeVar("R")


async def in_callers_transaction(
    write: Callable[..., R], /, *args: Any, using: str | None = None, **kwargs: Any
) -> R:
    """Run the sync ``write`` (``send``, ``publish``) on the thread of the caller's transaction.

    Raises ``CannotJoinTransaction`` (nothing written) when there is no such thread.
    """
    if not reaches_a_sync_caller():
        raise CannotJoinTransaction(
            f"{write.__qualname__} was awaited on an event loop of its own (asyncio.run?): "
            "it has no thread whose transaction it could join. Reach the async code "
            "through asgiref's async_to_sync from the thread that holds the transaction, "
            "or call the sync method there (see docs/async.md)."
        )
    return await sync_to_async(write, thread_sensitive=True)(*args, using=using, **kwargs)


def reaches_a_sync_caller() -> bool:
    """Return whether thread-sensitive ``sync_to_async`` calls from here run on a caller's thread.

    These are asgiref's own tests before it falls back to one shared thread.
    """
    # NOTE: asgiref offers no public way to ask this; these are its attributes as of
    # 3.8-3.13. tests/kew_django/asyncio covers each branch, so a change shows there.
    return (
        getattr(AsyncToSync.executors, "current", None) is not None  # under async_to_sync
        or SyncToAsync.thread_sensitive_context.get(None) is not None  # a Django request
        or asyncio.get_running_loop() in AsyncToSync.loop_thread_executors
    )


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
