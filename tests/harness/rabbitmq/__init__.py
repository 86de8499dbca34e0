"""A real RabbitMQ broker for tests.

``RabbitServer(**options)`` gets a broker from the first source that
:func:`pick_source` finds, in this order:

1. ``KEW_TEST_RABBITMQ_URL`` (``amqp://user:password@host:port/``), used as
   is after checking that the port answers
   (:class:`~tests.harness.rabbitmq.url.UrlRabbit`);
2. a node of the harness's own, run from Debian's ``rabbitmq-server``
   package with its data, logs, config and Erlang cookie in a temp dir and
   its AMQP, distribution and epmd ports free ports of 127.0.0.1
   (:class:`~tests.harness.rabbitmq.local.LocalRabbit`); never the system
   service.

Every source has the lifecycle of :mod:`tests.harness.lifecycle`: ``stop()``
keeps the data, ``kill()`` is a crash, ``start()`` brings the same node
back, ``close()`` removes it. This package never imports Django.
"""

from __future__ import annotations

import os

from tests.harness.rabbitmq.base import RabbitServer
from tests.harness.rabbitmq.local import LocalRabbit, find_rabbitmq_server
from tests.harness.rabbitmq.url import ENV_URL, UrlRabbit

__all__ = ["LocalRabbit", "RabbitServer", "UrlRabbit", "find_rabbitmq_server", "pick_source"]


def pick_source() -> type[RabbitServer]:
    """The class ``RabbitServer()`` makes: URL from the env, else a local node."""
    if os.environ.get(ENV_URL):
        return UrlRabbit
    return LocalRabbit
