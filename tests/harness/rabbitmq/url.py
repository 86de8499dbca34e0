"""A broker given by ``KEW_TEST_RABBITMQ_URL``: used as is, never controlled."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from tests.harness.rabbitmq.base import AMQP_PORT, RabbitServer, amqp_answers
from tests.harness.services import ServiceStartError, service_unsupported

__all__ = ["ENV_URL", "UrlRabbit"]

ENV_URL = "KEW_TEST_RABBITMQ_URL"


class UrlRabbit(RabbitServer):
    """The external broker of ``$KEW_TEST_RABBITMQ_URL``.

    :meth:`start` checks that it accepts an AMQP login. :meth:`stop`,
    :meth:`kill` and :meth:`restart` skip the calling test; :meth:`close`
    leaves the broker alone.
    """

    mode = "url"
    controllable = False

    _external_url: str | None = None

    @property
    def url(self) -> str:
        """The URL exactly as given in ``$KEW_TEST_RABBITMQ_URL``."""
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
        if parts.scheme != "amqp" or not parts.hostname:
            raise ServiceStartError(
                f"{ENV_URL} must look like amqp://user:password@host:port/, got {parts.scheme}://…"
            )
        self.host = parts.hostname
        self.port = parts.port or AMQP_PORT
        if parts.username is not None:
            self.user = unquote(parts.username)
        if parts.password is not None:
            self.password = unquote(parts.password)
        problem = amqp_answers(self.host, self.port, self.user, self.password, timeout=10)
        if problem is not None:
            raise ServiceStartError(f"{ENV_URL} does not accept an AMQP login: {problem}")
        self._external_url = url

    def _close(self, graceful: bool) -> None:
        self._external_url = None
