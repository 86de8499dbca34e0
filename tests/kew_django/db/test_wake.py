"""Wake-ups after the commit: no NOTIFY in the sender's transaction, none for a rollback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction

from kew_django import Channel
from kew_django.db import wake
from kew_django.db.notify import OUTBOX, QUEUE
from kew_django.providers.database import DatabaseProvider
from tests.contract.helpers import receive_all
from tests.kew_django.conftest import Job

pytestmark = pytest.mark.postgresql_only


class Boom(Exception):
    pass


@pytest.fixture
def listen(transactional_db) -> Iterator[psycopg.Connection]:
    """A connection of the test's own that LISTENs on Kew's channels."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {OUTBOX}")
        conn.execute(f"LISTEN {QUEUE}")
        yield conn


def until(conn: psycopg.Connection, channel: str, payload: str = "") -> list[psycopg.Notify]:
    """Return every notification up to the first of ``channel`` with ``payload`` (5 s at most)."""
    seen: list[psycopg.Notify] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for notify in conn.notifies(timeout=0.1):
            seen.append(notify)
            if (notify.channel, notify.payload) == (channel, payload):
                return seen
    raise AssertionError(f"no NOTIFY {channel} {payload!r}; got {seen}")


def test_a_committed_send_is_notified_after_its_commit_never_inside_it(listen, sends, queue):
    notified_in: list[tuple[bool, bool]] = []  # (in a transaction, autocommit) at each NOTIFY

    def watch(execute, sql, params, many, context):
        if "pg_notify" in sql:
            notified_in.append((connection.in_atomic_block, connection.get_autocommit()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        with transaction.atomic():
            Group.objects.create(name=f"business {queue}")
            Channel(queue, payload=Job).send(Job(1))
            assert notified_in == []
        seen = until(listen, OUTBOX) if sends == "outbox" else until(listen, QUEUE, queue)
    assert seen[-1].channel == (OUTBOX if sends == "outbox" else QUEUE)
    # sent at once on the sender's connection, in a statement of its own after the commit
    assert notified_in == [(False, True)]


def test_wakes_within_the_gap_go_to_the_notifier_s_own_connection(listen, monkeypatch):
    monkeypatch.setattr(wake, "GAP", 1.0)  # the second wake comes well within it
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (sender,) = cursor.fetchone()
    notifier = wake.Notifier(connection.alias)
    try:
        notifier.wake(OUTBOX, "first")
        notifier.wake(OUTBOX, "second")
        first = until(listen, OUTBOX, "first")
        second = until(listen, OUTBOX, "second")
    finally:
        notifier.close()
    assert first[-1].pid == sender
    assert second[-1].pid != sender


def test_a_rolled_back_send_wakes_nobody(listen, sends, database_provider, queue):
    other = f"{queue}.other"
    with pytest.raises(Boom), transaction.atomic():
        Channel(queue, payload=Job).send(Job(1))
        database_provider.producer().send(queue, b"never")
        raise Boom
    with transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():  # a savepoint rolled back
            database_provider.producer().send(queue, b"never")
            raise Boom
        database_provider.producer().send(other, b"committed")
    # One notifier session sends in order: a wake for the rollbacks would come first.
    seen = until(listen, QUEUE, other)
    assert [(n.channel, n.payload) for n in seen] == [(QUEUE, other)]


def test_many_sends_in_one_transaction_register_one_wake(sends, database_provider, queue):
    jobs = Channel(queue, payload=Job)
    with transaction.atomic():
        for n in range(20):
            jobs.send(Job(n))
            database_provider.producer().send(queue, b"x")
        # the relay's and the queue's; a direct send's is the queue's
        assert len(connection.run_on_commit) == (2 if sends == "outbox" else 1)


def test_no_trigger_on_kews_tables_notifies(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE NOT t.tgisinternal AND c.relname LIKE 'kew_django_%%' "
            "AND p.prosrc ILIKE '%%notify%%'"
        )
        assert cursor.fetchall() == []


def test_a_consumer_wakes_at_once_on_a_committed_send(transactional_db, queue):
    provider = DatabaseProvider(poll_interval=30.0)  # polling alone would take 30 s
    try:
        listener = provider.listener()
        assert listener.listening.wait(5), "no LISTEN"

        def later() -> None:
            time.sleep(0.3)
            with transaction.atomic():
                Group.objects.create(name=f"business {queue}")
                provider.producer().send(queue, b"late")
            connection.close()

        threading.Thread(target=later).start()
        started = time.monotonic()
        (delivery,) = receive_all(provider, queue, 1)
        assert delivery.payload == b"late" and time.monotonic() - started < 2.0
    finally:
        provider.close()


def test_a_lost_wake_costs_at_most_a_poll_interval(transactional_db, queue, monkeypatch):
    # The sender dies between its commit and the NOTIFY: only the poll finds the row.
    monkeypatch.setattr(wake.Notifier, "wake", lambda self, channel, payload="": None)
    provider = DatabaseProvider(poll_interval=0.5)
    try:
        assert provider.listener().listening.wait(5), "no LISTEN"
        with provider.receiver(queue) as consumer:
            assert consumer.receive(0.1) is None  # now waiting on the listener
            provider.producer().send(queue, b"unannounced")
            started = time.monotonic()
            delivery = consumer.receive(5)
            waited = time.monotonic() - started
            assert delivery is not None and delivery.payload == b"unannounced"
            delivery.ack()
        assert waited < 0.5 + 0.25  # one poll interval and a claim
    finally:
        provider.close()


def test_requeueing_a_dead_letter_and_retrying_an_outbox_row_wake_the_relay(listen, queue):
    from kew_django.models import DeadLetter, OutboxMessage
    from kew_django.operations import requeue_dead_letters, retry_outbox_messages

    letter = DeadLetter.objects.create(queue=queue, payload=b"{}", reason="failed")
    requeue_dead_letters([letter])
    until(listen, OUTBOX)
    row = OutboxMessage.objects.get(requeue_of=letter.message_id, queue=queue)
    OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.FAILED)
    assert retry_outbox_messages([row]).changed
    until(listen, OUTBOX)
