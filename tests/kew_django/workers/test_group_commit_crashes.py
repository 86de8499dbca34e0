"""A worker killed anywhere in a batch leaves exactly one effect per message (group commit).

A real ``kew_consume`` process (``prefetch`` 20, ``BATCH_SIZE`` 20)
handles 10 messages sent before it starts; one of them SIGKILLs the
process once: inside its handler as the last of the batch or in its
middle (before the commit), or from ``transaction.on_commit`` (after the
commit, before the acks). A second process, started as an orchestrator
would, finishes the queue (and one more message, sent after the death).
Every message then has exactly one business row, and any delivery still
left is one already recorded as processed. On the database provider
(SQLite, PostgreSQL), Artemis and RabbitMQ.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import kew
from kew.providers.base import DeliveryOptions, Provider
from kew.providers.headers import message_from
from kew_django.models import ProcessedMessage
from kew_django.providers.database import DatabaseProvider
from tests.harness.processes import Stall
from tests.kew_django.batch_app import effects
from tests.kew_django.batch_app.consumers import PLAIN, QUEUE
from tests.kew_django.child_env import start_manage_py

ROOT = Path(__file__).resolve().parents[3]
MESSAGES = 10
STALL = 20  # seconds without a new row, with the restarted consumer up
pytestmark = pytest.mark.slow

KILLS = {  # where the process dies: the message that kills it, and how
    "last-handler-before-commit": (MESSAGES - 1, "now"),
    "middle-handler-before-commit": (MESSAGES // 2, "now"),
    "between-commit-and-acks": (MESSAGES - 1, "after-commit"),
}


@pytest.fixture
def business_rows(transactional_db):
    effects.create()
    yield
    effects.drop()


def consume(provider_url: str, marks: Path, queue: str = QUEUE) -> subprocess.Popen:
    return start_manage_py(
        "tests.kew_django.batch_settings",
        "kew_consume",
        queue,
        KEW_TEST_PROVIDER_URL=provider_url,
        KEW_TEST_MARKS=str(marks),
    )


def send_messages(
    provider: Provider,
    numbers: range,
    run: str,
    killer: int = -1,
    kill: str = "",
    queue: str = QUEUE,
) -> None:
    with provider.producer() as producer:
        for n in numbers:
            data = {"n": n, "kill": kill if n == killer else None}
            options = DeliveryOptions(message_id=f"{run}-m{n}")  # brokers drop ids seen before
            producer.send(queue, json.dumps(data).encode(), options)


def wait_for_death(process: subprocess.Popen, timeout: float = 60) -> None:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the consumer did not kill itself:\n{output}") from None
    assert process.returncode == -9, f"died otherwise ({process.returncode}):\n{output}"


def finish(
    process: subprocess.Popen, timeout: float = 60, stalled: Callable[[], bool] | None = None
) -> None:
    """Let the restarted consumer run until every message has its row, then stop it.

    ``stalled`` is called once no row has come for ``STALL`` seconds; it
    returns whether it unblocked the run (Artemis's stranded delivery,
    docs/artemis.md), and the run fails if not.
    """
    deadline = time.monotonic() + timeout
    stall = Stall(effects.counts, STALL, stalled)
    try:
        while set(effects.counts()) != set(range(MESSAGES + 1)):
            assert process.poll() is None, "the restarted consumer died"
            assert time.monotonic() < deadline, f"rows after {timeout}s: {effects.counts()}"
            stall.check(f"rows {effects.counts()}")
            time.sleep(0.05)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output


def leftovers_are_recorded(provider: Provider, queue: str = QUEUE) -> None:
    """Take what is still queued: each must be a message recorded as processed (a duplicate)."""
    processed = ProcessedMessage.objects.filter(consumer=queue)
    with provider.receiver(queue, prefetch=MESSAGES) as receiver:
        while (delivery := receiver.receive(3.0)) is not None:
            origin = message_from(delivery, None).origin_id
            assert processed.filter(message_id=origin).exists(), f"{origin} never handled"
            delivery.ack()


def ran(marks: Path) -> list[tuple[int, int]]:
    path = marks / "ran"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(n), int(pid)) for n, pid in (line.split() for line in lines)]


def check(
    provider: Provider,
    provider_url: str,
    marks: Path,
    where: str,
    queue: str = QUEUE,
    stalled: Callable[[], bool] | None = None,
) -> set[int]:
    """Run the scenario; return the messages whose rows the killed process committed."""
    killer, kill = KILLS[where]
    send_messages(provider, range(MESSAGES), marks.name, killer, kill, queue)
    first = consume(provider_url, marks, queue)
    wait_for_death(first)
    send_messages(provider, range(MESSAGES, MESSAGES + 1), marks.name, queue=queue)
    committed = effects.by_process(first.pid)
    assert killer in {n for n, pid in ran(marks) if pid == first.pid}
    if kill == "now":  # the batch that held the killer was rolled back with it
        assert killer not in committed
    else:  # its batch committed before the kill
        assert killer in committed
    finish(consume(provider_url, marks, queue), stalled=stalled)
    leftovers_are_recorded(provider, queue)
    assert effects.counts() == Counter(range(MESSAGES + 1))  # exactly one effect per message
    return committed


@pytest.mark.parametrize("where", list(KILLS))
def test_a_crash_in_a_batch_on_the_database_provider(business_rows, tmp_path, where):
    url = "database://?lease=1&poll_interval=0.1"  # a dead worker's lease ends within a second
    committed = check(DatabaseProvider(), url, tmp_path, where)
    # All ten are leased at once, so they are one batch: its commit is all or nothing.
    assert committed == (set(range(MESSAGES)) if KILLS[where][1] == "after-commit" else set())


@pytest.mark.parametrize("where", list(KILLS))
def test_on_the_database_provider_no_idempotency_record_is_needed(business_rows, tmp_path, where):
    # The batch's acks commit with its rows: nothing is left queued to run twice.
    url = "database://?lease=1&poll_interval=0.1"
    committed = check(DatabaseProvider(), url, tmp_path, where, queue=PLAIN)
    assert committed == (set(range(MESSAGES)) if KILLS[where][1] == "after-commit" else set())
    assert not ProcessedMessage.objects.filter(consumer=PLAIN).exists()


@pytest.mark.artemis
@pytest.mark.parametrize("where", list(KILLS))
def test_a_crash_in_a_batch_on_artemis(business_rows, tmp_path, where, artemis_server):
    provider = kew.connect(artemis_server.url)
    try:
        # Only Artemis's stranded delivery of the killed worker may hold it up.
        check(
            provider,
            artemis_server.url,
            tmp_path,
            where,
            stalled=lambda: artemis_server.restart_for_stranded(QUEUE, 1),
        )
    finally:
        provider.close()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("where", list(KILLS))
def test_a_crash_in_a_batch_on_rabbitmq(business_rows, tmp_path, where, rabbitmq_url):
    provider = kew.connect(rabbitmq_url)
    try:
        check(provider, rabbitmq_url, tmp_path, where)
    finally:
        provider.close()
