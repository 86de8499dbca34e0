"""Playwright's sync API on a thread of its own, so Django keeps the main thread.

The sync API leaves an asyncio event loop marked as running on the thread
that started it, and Django then refuses database access there
(SynchronousOnlyOperation). Rather than switching that safety check off
(DJANGO_ALLOW_ASYNC_UNSAFE), every Playwright call is made on one
dedicated thread, through a proxy; the test and Django stay on the main
thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any


class BrowserThread:
    """One thread that makes every Playwright call."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")

    def run(self, function, *args, **kwargs) -> Any:
        """Call ``function`` on the browser thread and return its result (or raise)."""
        return self._executor.submit(function, *args, **kwargs).result()

    def remote(self, target: Any) -> Remote:
        """Return a proxy that makes ``target``'s calls on the browser thread."""
        return Remote(target, self)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class Remote:
    """A Playwright object used from another thread; results that are Playwright objects
    (a locator, a page) come back as proxies too."""

    def __init__(self, target: Any, thread: BrowserThread) -> None:
        self._target = target
        self._thread = thread

    def __getattr__(self, name: str) -> Any:
        value = self._thread.run(getattr, self._target, name)
        if not callable(value):
            return self._wrap(value)

        def call(*args, **kwargs):
            return self._wrap(self._thread.run(value, *args, **kwargs))

        return call

    def _wrap(self, value: Any) -> Any:
        if type(value).__module__.startswith("playwright."):
            return Remote(value, self._thread)
        return value
