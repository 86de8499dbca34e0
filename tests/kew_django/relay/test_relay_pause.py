"""A broker that pushes back pauses the relay: rows wait, no attempt is spent, it resumes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from kew.errors import BrokerBlocked
from kew.providers.base import Prepared, Producer
from kew.providers.memory import MemoryProvider
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.observability.observer import Observer
from kew_django.relay.publisher import Relay
from tests.harness.e2e import wait_until
from tests.kew_django.conftest import Job
from tests.kew_django.relay.test_relay_outage import Lines

PAUSED, RESUMED = "relay paused", "relay resumed"


class Held(MemoryProvider):
    """A memory provider whose producers raise BrokerBlocked while ``holding`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.refused = 0

    def producer(self) -> Producer:
        inner, provider = super().producer(), self

        class HeldProducer(Producer):
            def send(self, queue, payload, options=None) -> None:
                inner.send(queue, payload, options)

            def send_prepared(self, batch: Sequence[Prepared]) -> None:
                if provider.holding.is_set():
                    provider.refused += 1
                    raise BrokerBlocked("memory alarm (a test double)")
                inner.send_prepared(batch)

        return HeldProducer()


class Seen(Observer):
    """Record the relay's pause hooks."""

    def __init__(self) -> None:
        self.paused: list[str] = []
        self.resumed: list[float] = []

    def relay_paused(self, reason: str) -> None:
        self.paused.append(reason)

    def relay_resumed(self, seconds: float) -> None:
        self.resumed.append(seconds)


@contextmanager
def running(relay: Relay) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()


def rows(queue: str) -> set[tuple[str, int]]:
    return set(OutboxMessage.objects.filter(queue=queue).values_list("status", "attempts"))


@pytest.mark.django_db(transaction=True)
def test_a_blocked_broker_pauses_the_relay_once_and_it_resumes_by_itself(queue):
    provider, seen = Held(), Seen()
    provider.holding.set()
    Channel(queue, payload=Job).send_many([Job(i) for i in range(30)])
    relay = Relay(provider, queues=[queue], poll_interval=0.05, observer=seen)
    with Lines("kew_django.relay.publisher") as lines, running(relay):
        assert wait_until(lambda: provider.refused >= 3, 30), "the relay stopped trying"
        assert rows(queue) == {("pending", 0)}  # waiting, no attempt spent
        assert relay.pause.paused and seen.paused == ["memory alarm (a test double)"]
        provider.holding.clear()
        assert wait_until(lambda: rows(queue) == {("sent", 0)}, 30), rows(queue)
        assert wait_until(lambda: seen.resumed, 5)
    flow = [m for m in lines.messages if PAUSED in m or RESUMED in m]
    assert len(flow) == 2 and PAUSED in flow[0] and RESUMED in flow[1]  # one line each way
    assert not any("unavailable" in m for m in lines.messages)  # no outage back-off lines
    assert len(seen.resumed) == 1 and seen.resumed[0] > 0 and not relay.pause.paused
    assert provider.pending(queue) == 30  # every message once
    assert relay.stats.rejected == relay.stats.failed == 0


def test_the_pause_metric_counts_pauses_and_seconds():
    pytest.importorskip("prometheus_client")
    from kew_django.observability.metrics import Metrics

    metrics = Metrics(system="test")
    metrics.relay_paused("alarm")
    assert metrics.registry.get_sample_value("kew_relay_paused", {"messaging_system": "test"}) == 1
    time.sleep(0.01)
    metrics.relay_resumed(2.5)
    sample = metrics.registry.get_sample_value
    assert sample("kew_relay_paused", {"messaging_system": "test"}) == 0
    assert sample("kew_relay_pauses_total", {"messaging_system": "test"}) == 1
    assert sample("kew_relay_paused_seconds_total", {"messaging_system": "test"}) == 2.5
