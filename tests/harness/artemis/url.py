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
from tests.harness.given import GivenByUrl
from tests.harness.services import ServiceStartError, wait_for_port

__all__ = ["ENV_CORE_URL", "ENV_URL", "UrlArtemis"]

ENV_URL = "KEW_TEST_ARTEMIS_URL"
ENV_CORE_URL = "KEW_TEST_ARTEMIS_CORE_URL"


class UrlArtemis(GivenByUrl, ArtemisServer):
    """The external broker of ``$KEW_TEST_ARTEMIS_URL``; :meth:`start` checks its STOMP port."""

    env_var = ENV_URL

    def _start(self) -> None:
        url, parts = self.given_url("artemis", "artemis://user:password@host:port")
        self.stomp_host = parts.hostname or ""
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
