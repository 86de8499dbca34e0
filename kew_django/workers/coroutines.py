"""Coroutine handlers: run ``async def`` consumers on the worker's own event loop.

A worker whose handler (or ``on_exhausted``) is a coroutine function
starts one event loop, on a thread of its own, when the first coroutine
needs it, and closes it when the worker stops; handlers that keep
loop-bound clients (an HTTP session, a connection pool) between messages
can rely on that loop.

The worker thread waits for the coroutine inside the delivery's
transaction and, while it waits, runs the coroutine's thread-sensitive
``sync_to_async`` calls itself. Django's async ORM methods (``acreate``,
``aget``...), ``sync_to_async(fn)`` with its default
``thread_sensitive=True`` and ``Channel.asend`` therefore run on the
worker's connection, inside the delivery's transaction, exactly as a sync
handler's ORM calls do: rolled back if the handler raises, committed with
the idempotency record before the ack. ``sync_to_async(...,
thread_sensitive=False)`` runs on another thread and connection, outside
that transaction (on SQLite it waits for the worker's write lock).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, async_to_sync, iscoroutinefunction

log = logging.getLogger(__name__)

R = TypeVar("R")

CLOSE_TIMEOUT = 10.0  # seconds for left-over tasks, then the loop, to end at shutdown


class HandlerLoop:
    """One worker thread's event loop for coroutine handlers, started on first use."""

    def __init__(self, name: str):
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def resolve(self, answer: R | Awaitable[R]) -> R:
        """Return ``answer``, or what it returns when awaited on this loop if it is awaitable.

        Blocks the calling thread, which runs the awaitable's thread-sensitive
        ``sync_to_async`` calls meanwhile; its exception is raised here.
        """
        if not inspect.isawaitable(answer):
            return answer
        return run_here(self.start(), answer)

    def start(self) -> asyncio.AbstractEventLoop:
        """Return the running loop, starting it and its thread the first time."""
        if self.loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"kew-loop-{self.name}", daemon=True
            )
            thread.start()
            self.loop, self.thread = loop, thread
        return self.loop

    def close(self) -> None:
        """Cancel what the handlers left running, stop the loop and join its thread."""
        loop, thread = self.loop, self.thread
        if loop is None or thread is None:
            return
        self.loop = self.thread = None
        try:
            asyncio.run_coroutine_threadsafe(wind_down(), loop).result(CLOSE_TIMEOUT)
        except Exception:
            log.exception("%s: the event loop did not wind down cleanly", self.name)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_TIMEOUT)
        if thread.is_alive():  # a handler blocks the loop: leave the daemon thread behind
            log.error("%s: the event loop is blocked; left running", self.name)
            return
        loop.close()


def run_here(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[R]) -> R:
    """Await ``awaitable`` on ``loop`` while this thread runs its thread-sensitive calls.

    ``async_to_sync`` does this for a loop it finds in asgiref's thread-local
    of a ``sync_to_async`` thread; the worker thread is not one, so the
    loop is put there for the call and the old values put back after.
    """
    # NOTE: that thread-local is asgiref's own (3.x); tests/kew_django/asyncio checks
    # that the handler's ORM calls still run on the worker's thread.
    local = SyncToAsync.threadlocal
    saved = {key: getattr(local, key, None) for key in ("main_event_loop", "main_event_loop_pid")}
    local.main_event_loop, local.main_event_loop_pid = loop, os.getpid()
    try:
        return async_to_sync(awaited)(awaitable)
    finally:
        for key, value in saved.items():
            setattr(local, key, value)


async def awaited(awaitable: Awaitable[R]) -> R:
    """Return what ``awaitable`` returns (``async_to_sync`` takes a coroutine function)."""
    return await awaitable


async def wind_down() -> None:
    """Cancel the loop's other tasks and shut its async generators and executor down."""
    loop = asyncio.get_running_loop()
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


def is_coroutine_handler(handler: Any) -> bool:
    """Return whether ``handler`` is an ``async def`` function (or an object whose call is)."""
    return iscoroutinefunction(handler) or iscoroutinefunction(type(handler).__call__)
