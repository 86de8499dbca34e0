"""The Artemis provider when things break: a consumer process killed, the broker restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from kew.errors import ConnectionLost
from kew.providers import connect
from kew.providers.base import DeliveryOptions, Outgoing

pytestmark = pytest.mark.artemis

ROOT = Path(__file__).resolve().parents[3]

CONSUMER_SCRIPT = textwrap.dedent("""
    import sys, time
    from kew.providers import connect
    consumer = connect(sys.argv[1]).receiver(sys.argv[2])
    delivery = consumer.receive(20)
    print("got", delivery.payload.decode() if delivery else None, flush=True)
    time.sleep(60)  # never acks: killed before
""")


@pytest.fixture
def queue() -> str:
    return f"test.artemis.{uuid.uuid4().hex[:12]}"


def test_a_message_held_by_a_killed_consumer_goes_to_the_next_one(artemis_server, queue):
    provider = connect(artemis_server.url)
    with provider.producer() as producer:
        producer.send(queue, b"job-1", DeliveryOptions(message_id="job-1"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", CONSUMER_SCRIPT, artemis_server.url, queue],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout.readline().strip() == "got job-1"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    try:
        with provider.receiver(queue) as consumer:
            delivery = consumer.receive(10)
            restarted = delivery is None and artemis_server.restart_for_stranded(queue, 1)
            if restarted:  # the receiver reconnects to the restarted broker
                delivery = consumer.receive(30)
            assert delivery is not None, f"not back: {artemis_server.describe(queue)}"
            assert delivery.payload == b"job-1" and delivery.message_id == "job-1"
            # after a restart the broker has forgotten the delivery: not redelivered
            assert delivery.redelivered == (not restarted)
            delivery.ack()
            assert consumer.receive(0.5) is None
    finally:
        provider.close()


def test_producer_and_consumer_ride_out_a_broker_restart(artemis_server, queue):
    """Nothing is lost: resends are safe because every message has an id."""
    total, batch_size = 300, 10
    provider = connect(artemis_server.url, reconnect_delay=0.2)
    received: set[str] = set()
    deliveries = 0
    sent = 0
    done = threading.Event()
    errors: list[BaseException] = []

    def produce():
        nonlocal sent
        with provider.producer() as producer:
            for start in range(0, total, batch_size):
                batch = [
                    Outgoing(queue, f"{i}".encode(), DeliveryOptions(message_id=f"m-{i}"))
                    for i in range(start, start + batch_size)
                ]
                deadline = time.monotonic() + 60
                while True:
                    try:
                        producer.send_many(batch)
                        break
                    except ConnectionLost:
                        assert time.monotonic() < deadline, "broker never came back"
                        time.sleep(0.5)
                sent += len(batch)
                time.sleep(0.02)

    def consume():
        nonlocal deliveries
        consumer = provider.receiver(queue, prefetch=20)
        deadline = time.monotonic() + 90
        while len(received) < total and time.monotonic() < deadline:
            try:
                delivery = consumer.receive(0.5)
            except ConnectionLost:
                time.sleep(0.5)
                continue
            if delivery is not None:
                deliveries += 1
                received.add(delivery.message_id)
                delivery.ack()
        consumer.close()
        done.set()

    def guarded(target):
        def run():
            try:
                target()
            except BaseException as error:  # noqa: BLE001 - reported by the test
                errors.append(error)
                done.set()

        return threading.Thread(target=run)

    threads = [guarded(produce), guarded(consume)]
    for thread in threads:
        thread.start()
    try:
        while sent < total // 3 and not errors:
            time.sleep(0.05)
        artemis_server.restart()
        for thread in threads:
            thread.join(120)
    finally:
        provider.close()
    assert not errors, errors
    assert sent == total
    assert received == {f"m-{i}" for i in range(total)}
    assert deliveries >= total  # at least once: a few may come twice
