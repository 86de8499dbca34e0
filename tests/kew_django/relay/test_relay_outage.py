"""The relay under a real database outage: the harness's PostgreSQL stopped, then started again."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid

import pytest
from django.db import connection, connections

import kew
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.relay.publisher import Relay
from tests.contract.helpers import receive_all
from tests.harness.e2e import Process, app_env, manage, wait_until
from tests.kew_django.conftest import Job

pytestmark = pytest.mark.slow
OUTAGE_LINE = "database 'default' unavailable"  # the relay's back-off, once an outage begins


class Lines(logging.Handler):
    """Keep the messages of one logger (its records may not reach the root's handlers)."""

    def __init__(self, name: str):
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Lines:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)

    def saw(self, text: str) -> bool:
        return any(text in message for message in self.messages)


@pytest.mark.postgresql_only
def test_the_relay_rides_out_a_real_database_outage_losing_nothing_and_spending_no_attempts(
    transactional_db, postgres_server, artemis_url, queue
):
    assert connection.vendor == "postgresql"
    provider = kew.connect(artemis_url)
    Channel(queue, payload=Job).send_many([Job(i) for i in range(20)])
    relay = Relay(provider, poll_interval=0.05, backoff_max=0.5, queues=[queue])
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    connections.close_all()
    postgres_server.stop()
    try:
        with Lines("kew_django.relay.publisher") as lines:
            thread.start()
            assert wait_until(lambda: lines.saw(OUTAGE_LINE), 30), "the outage never reached it"
            postgres_server.start()
            connections.close_all()  # this thread's connection broke with the server
            deadline = time.monotonic() + 60
            while OutboxMessage.objects.filter(queue=queue, status="sent").count() < 20:
                assert time.monotonic() < deadline, "not every row was relayed after the outage"
                time.sleep(0.05)
            assert wait_until(lambda: lines.saw("available again"), 10), lines.messages
    finally:
        stop.set()
        thread.join(30)
        if not postgres_server.is_running():
            postgres_server.start()
    assert not thread.is_alive()
    rows = OutboxMessage.objects.filter(queue=queue)
    assert set(rows.values_list("status", "attempts")) == {("sent", 0)}
    assert len(receive_all(provider, queue, 20)) == 20
    provider.close()


def test_kew_relay_stopped_during_a_database_outage_exits_cleanly(
    tmp_path, postgres_server, artemis_server
):
    name = f"relay_{uuid.uuid4().hex[:10]}"
    postgres_server.create_database(name)
    env = app_env(
        DATABASE_URL=postgres_server.url_for(name),
        KEW_BROKER_URL=artemis_server.url,
        KEW_LOG_LEVEL="INFO",
    )
    manage(["migrate", "--noinput"], env)
    relay = Process("relay", ["kew_relay"], env, tmp_path, ready="relay: started")
    relay.start()
    try:
        postgres_server.stop()
        assert wait_until(lambda: OUTAGE_LINE in relay.output(), 30), relay.tail()
        began = time.monotonic()
        code = relay.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - began
    finally:
        relay.stop(signal.SIGKILL)
        if not postgres_server.is_running():
            postgres_server.start()
    assert code == 0, relay.tail()
    assert took < 10, took  # the back-off wait ends at the stop, not at its end
    assert "backlog unknown (database unavailable); stopped" in relay.output(), relay.tail()
