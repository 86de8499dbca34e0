"""What to do when a test needs a real service that cannot be had.

On a developer's machine a missing PostgreSQL or Java is a reason to skip
the tests that need it, with a message that says exactly what to install.
On CI (env ``CI`` set to ``true`` or ``1``) the same situation is a
failure: a CI run that silently skips the integration tests proves nothing.
Both skips carry a reason prefix (:data:`MISSING`, :data:`GIVEN_BY_URL`) by
which :mod:`tests.harness.summary` counts them at the end of the run.
"""

from __future__ import annotations

import os
import socket
import time
from typing import NoReturn

import pytest

__all__ = [
    "GIVEN_BY_URL",
    "MISSING",
    "ServiceStartError",
    "ServiceUnavailable",
    "docker_available",
    "free_port",
    "on_ci",
    "port_is_free",
    "service_missing",
    "service_unsupported",
    "tail",
    "wait_for_port",
]


MISSING = "service missing: "
"""Reason prefix of a skip because a service is not installed (fatal outside CI too)."""
GIVEN_BY_URL = "service given by URL: "
"""Reason prefix of a skip because a test would stop, kill or restart a server given by URL."""


class ServiceUnavailable(Exception):
    """The service cannot be provided on this machine (something is not installed).

    ``str(exc)`` says what is missing and how to install it. The fixtures turn it
    into :func:`service_missing`.
    """

    def __init__(self, name: str, install_hint: str) -> None:
        super().__init__(f"{name}: {install_hint}")
        self.name = name
        self.install_hint = install_hint


class ServiceStartError(RuntimeError):
    """Everything needed was there, but the service did not start (log attached)."""


def on_ci() -> bool:
    """True when the env var ``CI`` is ``true`` (any case) or ``1``."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def service_missing(name: str, install_hint: str) -> NoReturn:
    """Skip the current test (fail it on CI) because service ``name`` is missing.

    ``install_hint`` should say exactly what to install or set, for example
    ``"`apt-get install postgresql` (Debian) or set KEW_TEST_POSTGRES_URL"``.
    """
    message = f"{name} not available: {install_hint}"
    if on_ci():
        pytest.fail(f"{message} (CI is set, so a missing service is an error)", pytrace=False)
    pytest.skip(f"{MISSING}{message}")


def service_unsupported(what: str) -> NoReturn:
    """Skip (also on CI): the service given by URL cannot do ``what``.

    Used for ``stop()``, ``kill()`` and ``restart()`` of a server given by URL:
    that is a deliberate configuration, not a missing installation, but the
    guarantee the test checks goes untested, and the run's summary lists it.
    """
    pytest.skip(f"{GIVEN_BY_URL}{what}")


def docker_available(timeout: float = 2.0) -> bool:
    """Does a Docker engine answer a ping within ``timeout`` seconds?

    Cheap and never raises: returns False when the ``docker`` package is not
    installed, no engine is configured, or it does not answer. Setting
    ``KEW_TEST_NO_DOCKER=1`` makes it return False without asking.
    """
    if os.environ.get("KEW_TEST_NO_DOCKER", "").strip().lower() in {"1", "true", "yes"}:
        return False
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "no usable engine"
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server bind ``host:port`` right now?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Poll until a TCP connection to ``host:port`` succeeds; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def tail(text: str, n: int) -> str:
    """The last ``n`` lines of ``text``."""
    return "\n".join(text.splitlines()[-n:])
