"""Small helpers for the Docker sources, on a testcontainers ``DockerContainer``.

Nothing here imports testcontainers or docker: the caller already has a
container. Stopping, killing and starting go through the wrapped docker-py
container, so the container (and its data) outlives them; only
``DockerContainer.stop()`` removes it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.harness.services import tail

__all__ = ["is_running", "log_text", "log_tail"]


def is_running(container: Any) -> bool:
    """Is ``container`` (a started ``DockerContainer``, or None) running right now?"""
    if container is None:
        return False
    with contextlib.suppress(Exception):
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")
    return False


def log_text(container: Any) -> str:
    """The container's whole console output, stdout then stderr ("" if unknown)."""
    if container is None:
        return ""
    with contextlib.suppress(Exception):
        out, err = container.get_logs()
        return (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
    return ""


def log_tail(container: Any, n: int) -> str:
    """The last ``n`` lines of :func:`log_text`."""
    return tail(log_text(container), n)
