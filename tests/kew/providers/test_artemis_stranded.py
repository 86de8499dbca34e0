"""Artemis's management API over STOMP, and the deliveries the broker strands.

When a consumer's connection fails while it holds a delivery, Artemis
(2.40) runs two clean-ups of its session at once: the failure listener
rolls the session's transaction back, and the STOMP protocol manager then
rolls back "with the last message delivered", which acknowledges the
first held delivery into that already rolled-back transaction. The
delivery is then neither acked nor back in the queue: it stays counted
as in delivery, no consumer gets it, and only a broker restart (its
journal has it) brings it back. ``stranded`` counts such deliveries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from kew.errors import ProviderError
from kew.providers import connect
from kew.providers.artemis import ArtemisProvider, stranded
from kew.providers.base import DeliveryOptions
from tests.harness.e2e import wait_until

pytestmark = pytest.mark.artemis

ROOT = Path(__file__).resolve().parents[3]

# Holds one unacked delivery of each queue named, each on a connection of its own.
HOLDER_SCRIPT = textwrap.dedent("""
    import sys, time
    from kew.providers import connect
    provider = connect(sys.argv[1])
    receivers = [provider.receiver(queue) for queue in sys.argv[2:]]
    held = [receiver.receive(20) for receiver in receivers]
    print("holding", sum(delivery is not None for delivery in held), flush=True)
    time.sleep(60)  # never acks: killed before
""")


def provider_for(server) -> ArtemisProvider:
    provider = connect(server.url)
    assert isinstance(provider, ArtemisProvider)
    return provider


def test_a_delivery_held_by_a_live_consumer_is_not_stranded(artemis_server):
    queue = f"test.stranded.{uuid.uuid4().hex[:12]}"
    provider = provider_for(artemis_server)
    with provider.producer() as producer:
        producer.send(queue, b"job", DeliveryOptions(message_id="job"))
    try:
        with provider.management() as management:
            with provider.receiver(queue) as receiver:
                assert receiver.receive(10) is not None
                assert management.attribute(f"queue.{queue}", "DeliveringCount") == 1
                assert stranded(management, queue) == 0
            # closed unacked: back in the queue (the broker closes the session after its receipt)
            resource = f"queue.{queue}"
            assert wait_until(lambda: management.attribute(resource, "DeliveringCount") == 0, 10)
            assert management.attribute(resource, "MessageCount") == 1
            assert management.call(resource, "countMessages", "_AMQ_DUPL_ID = 'job'") == 1
            assert stranded(management, queue) == 0
    finally:
        provider.close()


def test_a_failed_management_request_names_the_resource(artemis_server):
    provider = provider_for(artemis_server)
    try:
        with provider.management() as management:
            with pytest.raises(ProviderError, match="queue.no-such-queue"):
                management.call("queue.no-such-queue", "listConsumersAsJSON")
            assert management.attribute("broker", "Version")  # the connection is still usable
    finally:
        provider.close()


def test_the_harness_describes_the_stranded_deliveries_of_a_queue(artemis_server):
    queue = f"test.stranded.{uuid.uuid4().hex[:12]}"
    provider = provider_for(artemis_server)
    try:
        with provider.producer() as producer:
            producer.send(queue, b"job", DeliveryOptions(message_id="job"))
        assert artemis_server.stranded(queue) == {queue: 0}
        description = artemis_server.describe(queue)
        assert queue in description and f"{{'{queue}': 0}}" in description
    finally:
        provider.close()


def test_the_harness_leaves_the_broker_be_when_a_missing_delivery_is_not_stranded(artemis_server):
    queue = f"test.stranded.{uuid.uuid4().hex[:12]}"
    provider = provider_for(artemis_server)
    try:
        with provider.producer() as producer:
            producer.send(queue, b"job", DeliveryOptions(message_id="job"))  # waiting, not stranded
        asked = time.time()
        assert artemis_server.restart_for_stranded(queue, 1) is False
        assert artemis_server.restart_for_stranded(queue, 0) is False
        assert started_at(provider) < asked  # not restarted
    finally:
        provider.close()


def test_the_harness_restarts_the_broker_when_the_missing_deliveries_are_stranded(
    artemis_server, monkeypatch
):
    """The remedy's branch, forced: the broker's race cannot be made to happen at will."""
    queue = f"test.stranded.{uuid.uuid4().hex[:12]}"
    provider = provider_for(artemis_server)
    try:
        with provider.producer() as producer:
            producer.send(queue, b"job", DeliveryOptions(message_id="job"))
        asked = time.time()
        monkeypatch.setattr(artemis_server, "stranded", lambda *queues: {queue: 1})
        with pytest.warns(UserWarning, match=f"stranded 1 .*{queue}"):
            assert artemis_server.restart_for_stranded(queue, 1) is True
        assert started_at(provider) > asked  # restarted
        assert take(provider, queue, timeout=10.0)  # persistent: back after the restart
    finally:
        provider.close()


def started_at(provider: ArtemisProvider) -> float:
    """Return when the broker started (epoch seconds)."""
    with provider.management() as management:
        return time.time() - int(management.attribute("broker", "UptimeMillis")) / 1000


@pytest.mark.slow
def test_every_delivery_a_killed_consumer_does_not_give_back_is_stranded_until_a_restart(
    artemis_server,
):
    """Kill consumers holding deliveries: each delivery comes back, or is stranded and
    comes back after a broker restart (a race in the broker: about 1 in 200 kills)."""
    provider = provider_for(artemis_server)
    lost: list[str] = []
    try:
        for round_ in range(4):
            queues = [f"test.stranded.{round_}.{uuid.uuid4().hex[:10]}" for _ in range(20)]
            with provider.producer() as producer:
                for queue in queues:
                    producer.send(queue, b"job", DeliveryOptions(message_id=queue))
            hold_and_kill(artemis_server.url, queues)
            missing = [queue for queue in queues if not take(provider, queue, timeout=3.0)]
            missing = [queue for queue in missing if not take(provider, queue, timeout=10.0)]
            with provider.management() as management:
                counts = {queue: stranded(management, queue) for queue in queues}
            assert {queue for queue, count in counts.items() if count} == set(missing)
            assert all(counts[queue] == 1 for queue in missing)
            lost += missing
        if lost:
            artemis_server.restart()
            assert [queue for queue in lost if not take(provider, queue, timeout=10.0)] == []
    finally:
        provider.close()


def hold_and_kill(url: str, queues: list[str]) -> None:
    """Run a process that holds one delivery of each queue, and SIGKILL it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, url, *queues],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"holding {len(queues)}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def take(provider: ArtemisProvider, queue: str, *, timeout: float) -> bool:
    """Receive and ack the one message of ``queue``; return whether it came."""
    with provider.receiver(queue) as receiver:
        delivery = receiver.receive(timeout)
        if delivery is None:
            return False
        delivery.ack()
        return True
