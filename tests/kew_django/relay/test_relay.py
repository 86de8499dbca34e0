"""The relay: batches, crashes, parallel relays, outages, rejections, purging."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from kew.errors import ConfigurationError, ConnectionLost
from kew.providers.base import Capability, DeliveryOptions
from kew_django import Channel
from kew_django.models import OutboxMessage, ProcessedMessage
from kew_django.relay.claims import Claims
from kew_django.relay.publisher import Relay
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import DeliveryOutcome, Worker
from tests.contract.helpers import assert_empty, receive_all
from tests.kew_django.conftest import OUTBOX_SENDS, Job, Wrapped


class Crash(BaseException):
    """The relay process dies (BaseException: nothing catches it on the way up)."""


def wait_for(condition, timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def statuses() -> dict[str, int]:
    rows = OutboxMessage.objects.values_list("status", flat=True)
    return {s: list(rows).count(s) for s in set(rows)}


def test_crash_between_publish_and_mark_sent_loses_nothing(provider, queue):
    jobs = Channel(queue, payload=Job)
    jobs.send_many([Job(i) for i in range(10)])
    crashing = Wrapped(provider)

    def crash():
        raise Crash

    crashing.after_send = crash
    with pytest.raises(Crash):
        Relay(crashing, batch_size=10).relay_batch()
    assert statuses() == {"pending": 10}, "the batch must not be marked sent"
    assert Relay(provider).relay_all() == 10  # published a second time
    got = receive_all(provider, queue, 10)
    assert sorted(jobs.codec.decode(d.payload).n for d in got) == list(range(10))
    if Capability.DEDUPLICATION in provider.capabilities:
        assert_empty(provider, queue)  # the broker dropped the duplicates
    else:
        # RabbitMQ keeps both copies; each carries its row's id, for an idempotent consumer
        again = receive_all(provider, queue, 10)
        assert sorted(d.message_id for d in again) == sorted(d.message_id for d in got)
        assert len({d.message_id for d in got}) == 10
        assert_empty(provider, queue)


def test_idempotent_consumer_drops_a_duplicate_published_after_the_first_was_consumed(
    provider, queue
):
    # What a relay crash after publishing looks like to a consumer once the broker no
    # longer remembers the id (the database provider forgets it when the row is acked).
    row = Channel(queue, payload=Job).send(Job(1))
    calls = []
    worker = Worker(ConsumerSpec(queue, calls.append, payload=Job, idempotent=True), provider)
    options = DeliveryOptions(message_id=str(row.pk))
    with provider.receiver(queue) as consumer, provider.producer() as producer:
        producer.send(queue, bytes(row.payload), options)
        assert worker.handle(consumer.receive(10)) is DeliveryOutcome.HANDLED
        producer.send(queue, bytes(row.payload), options)
        again = consumer.receive(2.0)  # Artemis drops it as a duplicate; the database does not
        if again is not None:
            assert worker.handle(again) is DeliveryOutcome.DUPLICATE
    assert calls == [Job(1)]
    assert ProcessedMessage.objects.filter(consumer=queue, message_id=str(row.pk)).count() == 1


def test_two_relays_in_parallel_publish_each_message_once(provider, queue):
    jobs = Channel(queue, payload=Job)
    jobs.send_many([Job(i) for i in range(300)])
    counting = Wrapped(provider)
    errors = []

    def relay():
        try:
            Relay(counting, batch_size=20).relay_all()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(counting.sent_ids) == 300
    assert len(set(counting.sent_ids)) == 300, "a message was published twice"
    assert statuses() == {"sent": 300}
    got = receive_all(provider, queue, 300, timeout=30)
    assert sorted(jobs.codec.decode(d.payload).n for d in got) == list(range(300))


def test_broker_outage_spends_no_attempts_and_loses_nothing(provider, queue):
    jobs = Channel(queue, payload=Job)
    jobs.send_many([Job(i) for i in range(5)])
    flaky = Wrapped(provider)
    flaky.down = True
    relay = Relay(flaky, poll_interval=0.05, backoff_max=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        time.sleep(1.0)
        assert statuses() == {"pending": 5}
        assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {0}
        flaky.down = False
        deadline = time.monotonic() + 10
        while statuses() != {"sent": 5} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert statuses() == {"sent": 5}
    assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {0}
    assert len(receive_all(provider, queue, 5)) == 5


@pytest.mark.artemis
@pytest.mark.slow
def test_real_broker_stopped_then_started(transactional_db, artemis_server, artemis_url, queue):
    import kew

    provider = kew.connect(artemis_url)
    jobs = Channel(queue, payload=Job)
    relay = Relay(provider, poll_interval=0.05, backoff_max=0.5)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    try:
        artemis_server.stop()
        jobs.send_many([Job(i) for i in range(20)])
        thread.start()
        time.sleep(2.0)
        assert statuses() == {"pending": 20}
        artemis_server.start()
        deadline = time.monotonic() + 60
        while statuses() != {"sent": 20} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert statuses() == {"sent": 20}
        assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {0}
        got = receive_all(provider, queue, 20, timeout=30)
        assert sorted(jobs.codec.decode(d.payload).n for d in got) == list(range(20))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(30)
        provider.close()


def test_rejection_costs_one_attempt_and_ends_in_failed(database_provider, queue):
    jobs = Channel(queue, payload=Job)
    rows = jobs.send_many([Job(i) for i in range(4)])
    refusing = Wrapped(database_provider)
    refusing.reject_ids = {str(rows[2].pk)}
    relay = Relay(refusing, max_attempts=2)
    assert relay.relay_batch() == 3  # two marked sent, one charged an attempt
    rows = {r.pk: r for r in OutboxMessage.objects.all()}
    ordered = sorted(rows.values(), key=lambda r: r.created_at)
    assert [r.status for r in ordered[:2]] == ["sent", "sent"]
    assert ordered[2].attempts == 1 and ordered[2].last_error == "message too large (test)"
    assert ordered[2].status == "pending" and ordered[3].attempts == 0
    OutboxMessage.objects.filter(pk=ordered[2].pk).update(retry_at=None)  # back-off over
    relay.relay_batch()
    ordered[2].refresh_from_db()
    assert ordered[2].status == "failed" and ordered[2].attempts == 2
    relay.relay_all()
    assert statuses() == {"sent": 3, "failed": 1}


def test_the_compiled_claim_takes_the_time_of_each_claim(database_provider, queue):
    # The claim is compiled once; a row whose back-off ends after that must still come.
    waiting, ready = Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    OutboxMessage.objects.filter(pk=waiting.pk).update(
        retry_at=timezone.now() + timedelta(seconds=0.5)
    )
    relay = Relay(database_provider, queues=[queue])
    assert relay.relay_batch() == 1
    assert OutboxMessage.objects.get(pk=ready.pk).status == "sent"
    assert OutboxMessage.objects.get(pk=waiting.pk).status == "pending"
    if connection.vendor in ("postgresql", "sqlite"):
        [(sql, _, nows)] = relay._claims._compiled.values()  # compiled, with its instants
        assert len(nows) >= 2, sql
    time.sleep(0.6)
    assert relay.relay_batch() == 1
    assert OutboxMessage.objects.get(pk=waiting.pk).status == "sent"
    sent_at = OutboxMessage.objects.get(pk=waiting.pk).sent_at
    assert sent_at is not None and timezone.now() - sent_at < timedelta(seconds=0.5)


def test_queue_option_relays_only_those_queues(database_provider, queue):
    Channel(queue, payload=Job).send(Job(1))
    Channel(queue + ".other", payload=Job).send(Job(2))
    assert Relay(database_provider, queues=[queue]).relay_all() == 1
    assert OutboxMessage.objects.get(queue=queue + ".other").status == "pending"


def test_purge_deletes_only_old_sent_rows(database_provider, queue):
    jobs = Channel(queue, payload=Job)
    old, recent, pending = jobs.send_many([Job(1), Job(2), Job(3)])
    now = timezone.now()
    OutboxMessage.objects.filter(pk=old.pk).update(status="sent", sent_at=now - timedelta(days=8))
    OutboxMessage.objects.filter(pk=recent.pk).update(status="sent", sent_at=now)
    assert Relay(database_provider, retention=timedelta(days=7)).purge() == 1
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}


def test_progress_line_shows_rate_backlog_and_oldest_age(database_provider, queue):
    jobs = Channel(queue, payload=Job)
    jobs.send_many([Job(i) for i in range(3)])
    relay = Relay(database_provider, batch_size=2)
    relay.relay_batch()
    line = relay.progress_line()
    assert "2 sent" in line and "backlog 1" in line and "oldest pending" in line


def test_relay_command_once(database_provider, providers, settings, queue, capsys):
    settings.KEW = {"PROVIDERS": {"default": {"URL": OUTBOX_SENDS}}}
    Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    call_command("kew_relay", "--once", "--batch-size", "1")
    assert "relayed 2 message(s)" in capsys.readouterr().out
    assert len(receive_all(database_provider, queue, 2)) == 2


@pytest.mark.postgresql_only
def test_relay_wakes_on_notify_at_once(provider, queue):
    assert connection.vendor == "postgresql"
    relay = Relay(provider, poll_interval=30.0)  # polling alone would take 30 s
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        assert wait_for(lambda: relay.listener and relay.listener.listening.is_set()), "no LISTEN"
        row = Channel(queue, payload=Job).send(Job(1))
        deadline = time.monotonic() + 5
        while OutboxMessage.objects.get(pk=row.pk).status != "sent":
            assert time.monotonic() < deadline, "the relay did not wake on NOTIFY"
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.postgresql_only
def test_one_notification_wakes_one_relay_thread(provider, queue, monkeypatch):
    # Two publishing threads wait; a commit's NOTIFY must cost one claim, not one per thread.
    claims: list[int] = []
    real_claim = Claims.claim

    def counted(self, limit):
        rows = real_claim(self, limit)
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(Claims, "claim", counted)
    relay = Relay(provider, poll_interval=30.0, threads=2, queues=[queue])
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()

    def both_wait() -> bool:  # listening, no claim running, no notification left unseen
        return relay.listener is not None and relay.listener.idle(2)

    try:
        assert wait_for(both_wait), "the relay threads never settled"
        before = len(claims)
        for n in range(3):
            row = Channel(queue, payload=Job).send(Job(n))
            deadline = time.monotonic() + 5
            while OutboxMessage.objects.get(pk=row.pk).status != "sent":
                assert time.monotonic() < deadline, "the relay did not wake on NOTIFY"
                time.sleep(0.01)
            assert wait_for(both_wait), "the relay threads did not settle again"
        assert claims[before:] == [1, 1, 1]
    finally:
        stop.set()
        thread.join(10)


def test_threads_publish_batches_in_the_order_they_were_claimed(provider, queue):
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(400)])
    recording = Wrapped(provider)
    assert Relay(recording, batch_size=20, threads=3).relay_all() == 400
    assert recording.sent_ids == [str(row.pk) for row in rows]
    assert statuses() == {"sent": 400}


def test_a_failed_batch_is_not_overtaken_by_a_later_batch(database_provider, queue):
    Channel(queue, payload=Job).send_many([Job(i) for i in range(200)])
    flaky = Wrapped(database_provider)
    calls = []

    def fail_second_batch():
        calls.append(1)
        if len(calls) == 2:
            flaky.down = True

    flaky.after_send = fail_second_batch
    with pytest.raises(ConnectionLost):
        Relay(flaky, batch_size=50, threads=2).relay_all()
    sent = OutboxMessage.objects.filter(status="sent").order_by("created_at")
    pending = OutboxMessage.objects.filter(status="pending").order_by("created_at")
    assert sent.count() + pending.count() == 200
    assert not pending.exists() or not sent.filter(created_at__gt=pending[0].created_at).exists()


class Preparing(Wrapped):
    """A provider whose ``prepare`` can be watched or broken, row by row."""

    def __init__(self, inner, on_prepare):
        super().__init__(inner)
        self.on_prepare = on_prepare

    def prepare(self, outgoing):
        self.on_prepare(outgoing.options.message_id)
        return self.inner.prepare(outgoing)


@pytest.mark.postgresql_only
def test_the_next_batch_is_prepared_while_one_waits_for_its_confirmation(provider, queue):
    # Checking and encoding a batch needs no broker: the next batch's thread does it while
    # the batch before it is in its turn, so the broker is not left waiting for the encoding.
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(20)])
    second_batch = {str(row.pk) for row in rows[10:]}
    prepared_meanwhile = threading.Event()
    overlaps: list[bool] = []

    def on_prepare(message_id):
        if message_id in second_batch:
            prepared_meanwhile.set()

    watching = Preparing(provider, on_prepare)

    def first_batch_in_its_turn():  # after its send, before the relay marks it sent
        if not overlaps:
            overlaps.append(prepared_meanwhile.wait(10))

    watching.after_send = first_batch_in_its_turn
    assert Relay(watching, batch_size=10, threads=2, queues=[queue]).relay_all() == 20
    assert overlaps == [True], "batch 2 was prepared only after batch 1 had been confirmed"
    assert watching.sent_ids == [str(row.pk) for row in rows]


# A relay left waiting would hang: the thread method ends the whole run, with every stack.
@pytest.mark.timeout(60, method="thread")
def test_an_error_while_preparing_fails_its_batch_in_turn_and_later_ones_wait(
    database_provider, queue
):
    rows = Channel(queue, payload=Job).send_many([Job(i) for i in range(60)])
    broken = str(rows[25].pk)  # in the third batch of ten
    next_batch = str(rows[30].pk)  # the first row of the fourth
    next_prepared = threading.Event()
    # PostgreSQL claims with SKIP LOCKED: the other thread claims the next batch meanwhile;
    # SQLite's write lock, held by the broken batch's transaction, keeps it waiting.
    concurrent = connection.vendor == "postgresql"
    waited: list[bool] = []

    def on_prepare(message_id):
        if message_id == next_batch:
            next_prepared.set()
        if message_id == broken:
            if concurrent:
                waited.append(next_prepared.wait(10))
            raise RuntimeError("a bug while encoding (test)")

    relay = Relay(Preparing(database_provider, on_prepare), batch_size=10, threads=2)
    with pytest.raises(RuntimeError, match="a bug while encoding"):
        relay.relay_all()
    assert waited == ([True] if concurrent else []), "the next batch was not claimed meanwhile"
    sent = OutboxMessage.objects.filter(status="sent").order_by("created_at", "id")
    pending = OutboxMessage.objects.filter(status="pending").order_by("created_at", "id")
    assert OutboxMessage.objects.get(pk=broken).status == "pending"
    assert [row.pk for row in sent] == [row.pk for row in rows[: sent.count()]]
    assert sent.count() <= 20 and pending.count() == 60 - sent.count()


def test_a_row_the_provider_can_never_take_fails_at_once(database_provider, queue):
    good, bad = Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    OutboxMessage.objects.filter(pk=bad.pk).update(headers={"bad name": "x"})  # e.g. hand-edited
    assert Relay(database_provider).relay_all() == 2
    bad.refresh_from_db()
    assert bad.status == "failed" and bad.attempts == 1 and "property" in bad.last_error
    assert OutboxMessage.objects.get(pk=good.pk).status == "sent"


def test_relay_rides_out_a_database_outage_and_logs_it_once(
    database_provider, queue, monkeypatch, caplog
):
    from django.db import OperationalError

    Channel(queue, payload=Job).send_many([Job(1), Job(2)])
    real_claim, failures = Claims.claim, []

    def flaky_claim(self, limit):
        if len(failures) < 3:
            failures.append(1)
            raise OperationalError("the database system is shutting down")
        return real_claim(self, limit)

    monkeypatch.setattr(Claims, "claim", flaky_claim)
    relay = Relay(database_provider, poll_interval=0.05, backoff_max=0.1, threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    with caplog.at_level("WARNING", logger="kew_django.relay"):
        thread.start()
        deadline = time.monotonic() + 10
        while statuses() != {"sent": 2} and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(10)
    assert statuses() == {"sent": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1


class RefusingConnections(Wrapped):
    """A provider whose broker refuses every connection as configured (a wrong password)."""

    def producer(self):
        raise ConfigurationError("refused user 'kew': wrong password")


def test_a_broker_refusing_the_relays_connection_fails_no_row(database_provider, queue):
    Channel(queue, payload=Job).send_many([Job(i) for i in range(3)])
    with pytest.raises(ConnectionLost, match="wrong password"):
        Relay(RefusingConnections(database_provider)).relay_all()
    assert statuses() == {"pending": 3}
    assert set(OutboxMessage.objects.values_list("attempts", flat=True)) == {0}
