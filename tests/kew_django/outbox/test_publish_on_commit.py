"""Publishing on commit on real brokers: the sender publishes, the relay is the safety net."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import override_settings

import kew
from kew.providers.base import Provider
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.outbox.committed import commit_publishers
from kew_django.relay import publisher as relay_publisher
from kew_django.relay.publisher import Relay
from kew_django.testing import DeliveryOutcome, drain
from kew_django.workers.registry import ConsumerRegistry
from tests.contract.helpers import assert_empty, receive_all
from tests.harness.e2e import wait_until
from tests.harness.processes import ROOT
from tests.kew_django.child_env import child_env
from tests.kew_django.conftest import Job

pytestmark = pytest.mark.slow
GRACE = 2.0
UNREACHABLE = {"artemis": "artemis://127.0.0.1:9/", "rabbitmq": "amqp://guest:guest@127.0.0.1:9/"}


@pytest.fixture(
    params=[
        pytest.param("artemis", marks=pytest.mark.artemis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def broker(request, transactional_db, providers) -> Iterator[tuple[str, str]]:
    """(name, URL) of a real broker; the process publishes on commit to it (GRACE 1 s)."""
    url = request.getfixturevalue(f"{request.param}_url")
    with publishing_on_commit(url):
        yield request.param, url
    commit_publishers.close_all()


def publishing_on_commit(url: str):
    return override_settings(
        KEW={
            "PROVIDERS": {"default": {"URL": url}},
            "OUTBOX": {"PUBLISH_ON_COMMIT": True, "GRACE": GRACE},
        }
    )


@pytest.fixture
def provider(broker, queue) -> Iterator[Provider]:
    """A provider of its own on the test's broker, to receive with (and relay with).

    The test's queue is declared first, as a running consumer would have
    done: RabbitMQ 3.10 may close a connection (541 INTERNAL_ERROR) that
    declares a new quorum queue while another connection is declaring it.
    """
    provider = kew.connect(broker[1])
    with provider.receiver(queue):
        pass
    yield provider
    provider.close()


def sent(queue: str) -> int:
    return OutboxMessage.objects.filter(queue=queue, status="sent").count()


def test_a_committed_send_is_published_by_its_sender_with_no_relay_running(provider, queue):
    with transaction.atomic():
        rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(5)])
    got = receive_all(provider, queue, 5)
    assert [d.message_id for d in got] == [str(row.pk) for row in rows]  # in order, its ids
    assert wait_until(lambda: sent(queue) == 5, 10)
    assert commit_publishers.get("default", "default", grace=GRACE).published == 5


def test_a_rolled_back_send_publishes_nothing(provider, queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        Channel(queue, payload=Job).send(Job(1))
        raise RuntimeError("roll back")
    with transaction.atomic():
        Channel(queue, payload=Job).send(Job(2))
    got = receive_all(provider, queue, 1)
    assert json.loads(got[0].payload)["n"] == 2
    assert_empty(provider, queue)
    assert list(OutboxMessage.objects.filter(queue=queue).values_list("status", flat=True)) == [
        "sent"
    ]


def test_with_a_relay_running_too_each_message_is_published_once(provider, queue):
    relay = Relay(provider, poll_interval=0.05, queues=[queue])
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        channel = Channel(queue, payload=Job)
        for n in range(40):
            with transaction.atomic():
                channel.send(Job(n))
        got = receive_all(provider, queue, 40)
        assert_empty(provider, queue, wait=GRACE + 1.0)  # past the grace: nothing left to send
    finally:
        stop.set()
        thread.join(30)
    assert sorted(json.loads(d.payload)["n"] for d in got) == list(range(40))
    assert len({d.message_id for d in got}) == 40
    assert sent(queue) == 40


def test_a_sender_killed_after_its_commit_leaves_its_row_to_the_relay(broker, provider, queue):
    child = subprocess.run(
        [sys.executable, "-m", "tests.kew_django.outbox.oncommit_child", queue],
        cwd=ROOT,
        env=child_env(
            "tests.kew_django.outbox.oncommit_settings",
            KEW_TEST_BROKER_URL=broker[1],
            KEW_TEST_ONCOMMIT_GRACE=str(GRACE),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr  # SIGKILLed after its commit
    row = OutboxMessage.objects.get(queue=queue)
    assert str(row.pk) == child.stdout.strip() and row.status == "pending"
    relay = Relay(provider, queues=[queue])
    assert relay.relay_all() == 0  # younger than the grace: still its sender's
    assert wait_until(lambda: relay.relay_all() == 1, GRACE + 5)
    (got,) = receive_all(provider, queue, 1)
    assert got.message_id == str(row.pk)
    assert_empty(provider, queue)


def test_a_broker_down_at_commit_leaves_the_rows_to_the_relay(broker, provider, queue):
    with publishing_on_commit(UNREACHABLE[broker[0]]):
        for n in range(3):
            with transaction.atomic():
                Channel(queue, payload=Job).send(Job(n))
        publisher = commit_publishers.get("default", "default", grace=GRACE)
        assert wait_until(lambda: publisher.left == 3, 30)
    assert OutboxMessage.objects.filter(queue=queue, status="pending").count() == 3
    relay = Relay(provider, queues=[queue])
    assert wait_until(lambda: relay.relay_all() == 3 or sent(queue) == 3, GRACE + 5)
    got = receive_all(provider, queue, 3)
    assert sorted(json.loads(d.payload)["n"] for d in got) == [0, 1, 2]
    assert set(OutboxMessage.objects.filter(queue=queue).values_list("attempts", flat=True)) == {0}


def test_a_crash_between_publish_and_mark_is_a_duplicate_the_broker_or_the_consumer_absorbs(
    broker, provider, queue, monkeypatch
):
    with override_settings(KEW={"PROVIDERS": {"default": {"URL": broker[1]}}}):
        rows = Channel(queue, payload=Job).send_many([Job(1), Job(2)])  # this test publishes them
    relay = Relay(provider)

    def die(ids, using):
        raise RuntimeError("the process died after the broker's confirmation (test)")

    monkeypatch.setattr(relay_publisher, "mark_sent", die)
    with pytest.raises(RuntimeError):
        relay.publish_rows(rows)  # published, not marked: pending still
    monkeypatch.undo()
    OutboxMessage.objects.filter(queue=queue).update(retry_at=None)  # past the grace
    assert Relay(provider, queues=[queue]).relay_all() == 2  # the safety net sends them again

    registry = ConsumerRegistry()
    handled: list[int] = []
    registry.consumer(queue, payload=Job, idempotent=True)(lambda job: handled.append(job.n))
    outcomes = drain(queue, provider=provider, relay=False, registry=registry)
    assert sorted(handled) == [1, 2]  # one effect each
    duplicates = outcomes.count(DeliveryOutcome.DUPLICATE)
    # Artemis drops the re-send by its id (_AMQ_DUPL_ID); RabbitMQ stores it and the
    # idempotent consumer recognises the id.
    assert duplicates == {"artemis": 0, "rabbitmq": 2}[broker[0]], outcomes
