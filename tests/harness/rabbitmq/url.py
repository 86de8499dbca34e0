"""A broker given by ``KEW_TEST_RABBITMQ_URL``: used as is, never controlled."""

from __future__ import annotations

from urllib.parse import unquote

from tests.harness.given import GivenByUrl
from tests.harness.rabbitmq.base import AMQP_PORT, RabbitServer, amqp_answers
from tests.harness.services import ServiceStartError

__all__ = ["ENV_URL", "UrlRabbit"]

ENV_URL = "KEW_TEST_RABBITMQ_URL"


class UrlRabbit(GivenByUrl, RabbitServer):
    """The external broker of ``$KEW_TEST_RABBITMQ_URL``; :meth:`start` checks an AMQP login."""

    env_var = ENV_URL

    def _start(self) -> None:
        url, parts = self.given_url("amqp", "amqp://user:password@host:port/")
        self.host = parts.hostname or ""
        self.port = parts.port or AMQP_PORT
        if parts.username is not None:
            self.user = unquote(parts.username)
        if parts.password is not None:
            self.password = unquote(parts.password)
        problem = amqp_answers(self.host, self.port, self.user, self.password, timeout=10)
        if problem is not None:
            raise ServiceStartError(f"{ENV_URL} does not accept an AMQP login: {problem}")
        self._external_url = url
