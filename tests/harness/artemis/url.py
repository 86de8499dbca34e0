"""A broker given by ``KEW_TEST_ARTEMIS_URL``: used as is, never controlled.

``KEW_TEST_ARTEMIS_URL`` is ``artemis://user:password@host:port`` (the STOMP
port; user and password percent-encoded); ``KEW_TEST_ARTEMIS_CORE_URL``
(``tcp://host:61616``) gives the core port for the CLI helpers, default
61616 on the same host.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from tests.harness.artemis.base import CORE_PORT, STOMP_PORT, ArtemisServer
from tests.harness.services import ServiceStartError, service_unsupported, wait_for_port

__all__ = ["ENV_CORE_URL", "ENV_URL", "UrlArtemis"]

ENV_URL = "KEW_TEST_ARTEMIS_URL"
ENV_CORE_URL = "KEW_TEST_ARTEMIS_CORE_URL"


class UrlArtemis(ArtemisServer):
    """The external broker of ``$KEW_TEST_ARTEMIS_URL``.

    :meth:`start` checks that its STOMP port answers. :meth:`stop`,
    :meth:`kill` and :meth:`restart` skip the calling test; :meth:`close`
    leaves the broker alone.
    """

    mode = "url"
    controllable = False

    _external_url: str | None = None

    @property
    def url(self) -> str:
        """The URL exactly as given in ``$KEW_TEST_ARTEMIS_URL``."""
        return self._external_url or super().url

    def is_running(self) -> bool:
        """True once :meth:`start` found the broker answering."""
        return self._external_url is not None

    def stop(self, timeout: float = 30.0) -> None:
        service_unsupported(f"cannot stop the external broker given by {ENV_URL}")

    def kill(self) -> None:
        service_unsupported(f"cannot kill the external broker given by {ENV_URL}")

    def log_tail(self, n: int = 50) -> str:
        return ""

    def _start(self) -> None:
        url = os.environ.get(ENV_URL, "")
        parts = urlsplit(url)
        if parts.scheme != "artemis" or not parts.hostname:
            raise ServiceStartError(
                f"{ENV_URL} must look like artemis://user:password@host:port, got {parts.scheme}://…"
            )
        self.stomp_host = parts.hostname
        self.stomp_port = parts.port or STOMP_PORT
        if parts.username is not None:
            self.user = unquote(parts.username)
        if parts.password is not None:
            self.password = unquote(parts.password)
        self.core_port = urlsplit(os.environ.get(ENV_CORE_URL, "")).port or CORE_PORT
        if not wait_for_port(self.stomp_host, self.stomp_port, timeout=10):
            raise ServiceStartError(
                f"{ENV_URL} points at {self.stomp_host}:{self.stomp_port}, which does not answer"
            )
        self._external_url = url

    def _close(self, graceful: bool) -> None:
        self._external_url = None
