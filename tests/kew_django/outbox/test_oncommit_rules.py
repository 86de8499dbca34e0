"""Publishing on commit, no broker: which rows are handed, when the publisher gives up, checks."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

import kew
from kew.errors import BrokerBlocked
from kew_django import Channel
from kew_django.models import OutboxMessage
from kew_django.observability import Observability
from kew_django.outbox import committed
from kew_django.outbox.checks import check_outbox
from kew_django.outbox.committed import CommitPublisher, commit_publishers
from kew_django.relay.publisher import Relay
from tests.harness.e2e import wait_until
from tests.kew_django.conftest import Job, Wrapped

ON = {"PUBLISH_ON_COMMIT": True, "GRACE": 2.0}


def settings_with(outbox: dict[str, Any]):
    return override_settings(KEW={"PROVIDERS": {"default": {"URL": "memory://"}}, "OUTBOX": outbox})


class Recording:
    """A publisher's relay that records what it is given, or fails as told."""

    def __init__(self, error: Exception | None = None, wait: threading.Event | None = None):
        self.error, self.wait = error, wait
        self.batches: list[list[Any]] = []
        self.stats = SimpleNamespace(sent=0)
        self.entered = threading.Event()  # a batch is being published (and may be stuck)

    def publish_rows(self, rows):
        self.entered.set()
        if self.wait is not None:
            self.wait.wait(10)
        self.batches.append(list(rows))
        if self.error is not None:
            raise self.error
        self.stats.sent += len(rows)
        return len(rows)

    def close(self):
        pass


@pytest.fixture
def recording(transactional_db, providers):
    """Every publisher of the test hands its batches to one ``Recording``."""
    relay = Recording()
    commit_publishers.close_all()
    commit_publishers.relays, kept = (lambda alias, using: relay), commit_publishers.relays
    yield relay
    commit_publishers.close_all()
    commit_publishers.relays = kept


def handed(relay: Recording) -> list[int]:
    return [row.payload for batch in relay.batches for row in batch]


def test_eligible_rows_are_held_from_the_relay_for_the_grace_and_handed_after_the_commit(
    recording, queue
):
    with settings_with(ON), transaction.atomic():
        before = timezone.now()
        rows = Channel(queue, payload=Job).send_many([Job(1), Job(2)])
        assert recording.batches == []  # not before the commit
    assert wait_until(lambda: len(handed(recording)) == 2, 5)
    assert [row.pk for batch in recording.batches for row in batch] == [row.pk for row in rows]
    for row in OutboxMessage.objects.filter(queue=queue):
        assert timedelta(seconds=1.9) < row.retry_at - before < timedelta(seconds=3)
    assert Relay(kew.connect("memory://"), queues=[queue]).relay_all() == 0  # still the sender's


def test_rolled_back_sends_and_savepoints_hand_nothing(recording, queue):
    channel = Channel(queue, payload=Job)
    with settings_with(ON):
        with pytest.raises(RuntimeError), transaction.atomic():
            channel.send(Job(1))
            raise RuntimeError
        with transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                channel.send(Job(2))
                raise RuntimeError
            channel.send(Job(3))
    assert wait_until(lambda: len(handed(recording)) == 1, 5)
    assert handed(recording) == [b'{"n":3,"note":""}']


@pytest.mark.parametrize(
    "outbox", [{"PUBLISH_ON_COMMIT": False}, {"PUBLISH_ON_COMMIT": ["some.other.queue"]}]
)
def test_queues_left_out_go_through_the_relay_as_before(recording, queue, outbox):
    with settings_with(outbox):
        Channel(queue, payload=Job).send(Job(1))
    (row,) = OutboxMessage.objects.filter(queue=queue)
    assert row.retry_at is None
    assert commit_publishers._publishers == {}


def test_listed_queues_are_published_on_commit(recording, queue):
    with settings_with({"PUBLISH_ON_COMMIT": [queue]}):
        Channel(queue, payload=Job).send(Job(1))  # autocommit: handed at once
    assert wait_until(lambda: len(handed(recording)) == 1, 5)


def test_scheduled_rows_wait_for_the_relay(recording, queue):
    with settings_with(ON):
        Channel(queue, payload=Job).send_after(Job(1), timedelta(minutes=5))
    (row,) = OutboxMessage.objects.filter(queue=queue)
    assert row.retry_at is None and row.deliver_at is not None
    assert commit_publishers._publishers == {}


def test_a_blocked_broker_makes_the_publisher_leave_rows_to_the_relay_for_a_while(
    transactional_db, monkeypatch
):
    monkeypatch.setattr(committed, "COOL_DOWN", 0.5)
    relay = Recording(error=BrokerBlocked("the broker holds producers back (test)"))
    publisher = CommitPublisher("default", "default", grace=5.0, relays=lambda a, u: relay)
    try:
        publisher.hand(["row 1"])
        assert wait_until(lambda: publisher.left == 1, 5)
        publisher.hand(["row 2", "row 3"])  # during the cool-down: left at once
        assert publisher.left == 3 and len(relay.batches) == 1
        relay.error = None
        time.sleep(0.6)  # the cool-down ends
        publisher.hand(["row 4"])
        assert wait_until(lambda: relay.batches[-1] == ["row 4"], 5)
        assert publisher.left == 3 and publisher.published == 1
    finally:
        publisher.close()


def test_handing_never_waits_for_a_stuck_publish_and_what_waits_is_bounded(transactional_db):
    stuck = threading.Event()
    relay = Recording(wait=stuck)
    publisher = CommitPublisher(
        "default", "default", grace=5.0, relays=lambda a, u: relay, limit=10
    )
    try:
        publisher.hand([0])
        assert relay.entered.wait(5), "the publisher never took the first row"  # stuck on it
        began = time.monotonic()
        for n in range(1, 30):
            publisher.hand([n])
        assert time.monotonic() - began < 0.5
        assert len(publisher._waiting) == 10  # the limit; the rest is left to the relay
        assert publisher.left == 19
    finally:
        stuck.set()
        publisher.close()
    assert sum(len(batch) for batch in relay.batches) + publisher.left == 30


def test_rows_waiting_half_the_grace_are_left_to_the_relay(transactional_db):
    stuck = threading.Event()
    relay = Recording(wait=stuck)
    publisher = CommitPublisher("default", "default", grace=0.2, relays=lambda a, u: relay)
    try:
        publisher.hand(["first"])  # taken, then stuck
        time.sleep(0.05)
        publisher.hand(["stale"])
        time.sleep(0.2)  # longer than half the grace
        stuck.set()
        assert wait_until(lambda: publisher.left == 1, 5)
        assert relay.batches == [["first"]]
    finally:
        stuck.set()
        publisher.close()


def test_a_rejected_row_takes_the_relays_rejection_path(transactional_db, outbox_sends, queue):
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(3)])
    refusing = Wrapped(kew.connect("memory://"))
    refusing.reject_ids = {str(rows[1].pk)}
    assert Relay(refusing).publish_rows(rows) == 2  # one sent, one rejected
    states = dict(OutboxMessage.objects.filter(queue=queue).values_list("id", "status"))
    assert [states[row.pk] for row in rows] == ["sent", "pending", "pending"]
    rejected = OutboxMessage.objects.get(pk=rows[1].pk)
    assert rejected.attempts == 1 and rejected.retry_at > timezone.now()
    assert refusing.sent_ids == [str(rows[0].pk)]


@pytest.mark.parametrize(
    "outbox",
    [
        {"PUBLISH_ON_COMMIT": "yes"},
        {"PUBLISH_ON_COMMIT": ["", "q"]},
        {"GRACE": 0},
        {"GRACE": "5s"},
        {"PUBLISH": True},
        [],
    ],
)
def test_a_wrong_outbox_setting_is_kew_e050(outbox):
    with override_settings(KEW={"OUTBOX": outbox}):
        errors = check_outbox()
    assert [error.id for error in errors] == ["kew.E050"]
    assert errors[0].hint


def test_the_outbox_settings_may_be_left_out_or_right():
    with override_settings(KEW={}):
        assert check_outbox() == []
    with override_settings(KEW={"OUTBOX": {"PUBLISH_ON_COMMIT": ["a", "b"], "GRACE": 0.5}}):
        assert check_outbox() == []


def test_a_process_that_serves_metrics_counts_what_it_publishes_on_commit(
    transactional_db, providers, queue
):
    pytest.importorskip("prometheus_client")
    commit_publishers.close_all()  # the next thread makes its relay with the process's observer
    observability = Observability(kind="test", queues=[], provider=None, port=0, record=False)
    observability.start()
    try:
        with settings_with(ON):
            Channel(queue, payload=Job).send_many([Job(1), Job(2)])
            labels = {"messaging_system": "kew", "messaging_destination_name": queue}
            value = observability.metrics.registry.get_sample_value
            assert wait_until(lambda: value("messaging_client_sent_messages_total", labels) == 2, 5)
    finally:
        commit_publishers.close_all()
        observability.close()
    assert set(OutboxMessage.objects.filter(queue=queue).values_list("status", flat=True)) == {
        "sent"
    }


def test_drain_publishes_what_its_process_publishes_on_commit(transactional_db, providers, queue):
    from kew_django.testing import DeliveryOutcome, drain
    from kew_django.workers.registry import ConsumerRegistry

    jobs = Channel(queue, payload=Job)
    registry = ConsumerRegistry()
    seen: list[int] = []

    @registry.consumer(jobs)
    def handle(job: Job) -> None:
        seen.append(job.n)
        if job.n < 3:
            jobs.send(Job(job.n + 10))  # published on commit by this process, after the handler

    try:
        with settings_with(ON):
            with transaction.atomic():
                jobs.send_many([Job(1), Job(2)])
            assert drain(jobs, registry=registry) == [DeliveryOutcome.HANDLED] * 4
    finally:
        commit_publishers.close_all()
    assert sorted(seen) == [1, 2, 11, 12]
