"""The lifecycle every harness server follows, in the same words.

Both :class:`~tests.harness.PostgresServer` and :class:`~tests.harness.ArtemisServer`
are subclasses of :class:`Server`:

``start()``
    have a running server and return it. Idempotent. After ``stop()`` or
    ``kill()`` it starts the *same* server again, with its data (database
    cluster, broker journal) and, for local binaries, on the same ports; a
    Docker container may get new host ports, so read ``url`` again. After
    ``close()`` it begins afresh: a new, empty server.
``stop()``
    shut the server down cleanly. Its data is kept.
``kill()``
    SIGKILL, like a crash. Its data is what a crash leaves behind (for the
    harness's PostgreSQL, with ``synchronous_commit=off``, not the commits of
    the last ~0.6 s).
``restart()``
    ``stop()`` then ``start()``.
``close()``
    stop the server and remove everything the harness made for it (temp
    dirs, containers). Idempotent. Leaving a ``with`` block does it, and so
    does interpreter exit for a server that was never closed.

A server given by URL in the environment is not the harness's to control
(``controllable`` is False): its ``stop()``, ``kill()`` and ``restart()``
skip the calling test (:func:`~tests.harness.services.service_unsupported`)
and its ``close()`` only forgets it. This module never imports Django.
"""

from __future__ import annotations

import atexit
import contextlib
import time
from typing import ClassVar, Self

__all__ = ["Server"]

# NOTE: process-wide on purpose: what runs at interpreter exit must find every
# server that was started and not closed, or a broker outlives the test run.
_open: set[Server] = set()


@atexit.register
def _close_leftovers() -> None:
    """At interpreter exit, no server the harness started may survive."""
    for server in list(_open):
        with contextlib.suppress(Exception):
            server.close(graceful=False)


class Server:
    """A real service for tests, with the lifecycle in the module docstring.

    ``mode`` says where it comes from (``"url"``, ``"docker"`` or
    ``"local"``); ``start_seconds`` is how long the last :meth:`start` took.
    Each source fills in the methods that raise :class:`NotImplementedError`
    here. (Not an ``abc.ABC``: ``PostgresServer()`` and ``ArtemisServer()``
    are called on the base class and return a source's subclass.)
    """

    mode: ClassVar[str]
    controllable: ClassVar[bool] = True
    """Can :meth:`stop`, :meth:`kill` and :meth:`restart` be used (not a URL)?"""
    start_seconds: float | None = None

    def start(self) -> Self:
        """Have a running server (the same one again after stop or kill)."""
        began = time.monotonic()
        if not self.is_running():
            _open.add(self)
            self._start()
        self.start_seconds = time.monotonic() - began
        return self

    def restart(self) -> Self:
        """A real :meth:`stop` and :meth:`start` of the same server, keeping its data."""
        self.stop()
        return self.start()

    def close(self, graceful: bool = True) -> None:
        """Stop the server and remove everything made for it (SIGKILL unless ``graceful``)."""
        _open.discard(self)
        self._close(graceful)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Where clients connect (valid after :meth:`start`)."""
        raise NotImplementedError

    def is_running(self) -> bool:
        """Is the server up right now?"""
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly; its data is kept for :meth:`start`."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL the server, like a crash; :meth:`start` brings it back."""
        raise NotImplementedError

    def log_tail(self, n: int = 50) -> str:
        """The last ``n`` lines of the server's log ("" if there is none)."""
        raise NotImplementedError

    def _start(self) -> None:
        """Make the server run: a new one, or the stopped one again."""
        raise NotImplementedError

    def _close(self, graceful: bool) -> None:
        """Stop the server if it runs and remove what was made for it."""
        raise NotImplementedError
