"""A crash of PostgreSQL loses unflushed leases, never a handled message's effect or ack.

The database provider's lease commits without waiting for its WAL write
(``leases.UNFLUSHED_COMMIT``); the ack is a DELETE in the handler's own
transaction, which waits. A SIGKILL of the server loses what sat in its
WAL buffers. To make that loss certain rather than a race with the WAL
writer's 200 ms rounds, the server's WAL writer is paused (SIGSTOP, a
local server only): an unflushed commit is then written only by the next
commit that waits, anyone's. The consumers' connections wait for their
commits (``synchronous_commit=on``, as in production; the harness turns
it off).

- The lease statements alone: of two leases, the one that waited
  survives the kill, the unflushed one after it is lost: its row is due
  again at once, not marked redelivered (no crash is counted), and the
  old holder's ack deletes nothing (its handler's writes roll back).
- Two real ``kew_consume`` processes handle ``MESSAGES`` messages of the
  consumer without idempotency records while the server is killed
  ``KILLS`` times mid-stream. At every look each message is either still
  queued or has exactly one business row (one statement reads both): an
  ack committed apart from its handler's writes, before or after them,
  shows up as neither or both. Each process rides out every outage and
  stops cleanly at the end; the queue ends empty, with no dead letter,
  and no crash count that could give a message up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from kew.providers.base import DeliveryOptions, Outgoing
from kew_django.models import CrashCount, DeadLetter, QueuedMessage
from kew_django.providers.database import DatabaseProvider
from kew_django.providers.leases import Leases
from tests.harness.postgres.url import ENV_URL
from tests.harness.processes import ROOT
from tests.harness.services import service_missing, service_unsupported
from tests.kew_django.batch_app import effects
from tests.kew_django.batch_app.consumers import PLAIN
from tests.kew_django.child_env import DATABASE_KEYS, child_env

pytestmark = [pytest.mark.postgresql_only, pytest.mark.slow, pytest.mark.one_leg(2)]

MESSAGES = 300
KILLS = 3
PAUSE = 0.01  # each handler's, so that a batch of 20 is in flight for a while
PROVIDER_URL = "database://?lease=3&poll_interval=0.1"
PREFIX = "dbkill-"
WAIT = 30.0  # seconds: a bound for each wait, far above what it takes


class WalWriter:
    """The server's WAL writer, paused (``hold``) so that unflushed commits stay unwritten."""

    def __init__(self, server):
        if not server.controllable:
            service_unsupported(f"cannot kill the external PostgreSQL given by {ENV_URL}")
        if server.mode != "local":  # a container's server may come back on another port
            service_missing(  # fails on CI; a local server is what it needs
                "a local PostgreSQL server (pausing its WAL writer with SIGSTOP)",
                "`apt-get install postgresql` (Debian/Ubuntu) and KEW_TEST_NO_DOCKER=1",
            )
        self.server = server
        self.pid: int | None = None

    def hold(self) -> None:
        """Pause the running server's WAL writer."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
            (self.pid,) = cursor.fetchone()
        os.kill(self.pid, signal.SIGSTOP)

    def crash(self) -> None:
        """SIGKILL the server (the paused writer with it); start it again and pause the new one."""
        connections.close_all()
        self.pid = None
        self.server.kill()
        self.server.start()
        self.hold()

    def release(self) -> None:
        """Let the writer run again (a stopped writer would hang the server's shutdown)."""
        pid, self.pid = self.pid, None
        if pid is not None and self.server.is_running():
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def wal_writer(transactional_db, postgres_server) -> Iterator[WalWriter]:
    assert connection.vendor == "postgresql"
    writer = WalWriter(postgres_server)
    try:
        yield writer
    finally:
        writer.release()
        if not postgres_server.is_running():
            postgres_server.start()
        connections.close_all()


def commit_waits() -> None:
    """Make the current transaction's commit wait for its WAL write: it survives a kill."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO on")


def row_state(pk: int) -> tuple[uuid.UUID | None, bool]:
    """Return row ``pk``'s lease token and whether it is due now, by the database's clock."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT lease_token, available_at <= now() FROM {QueuedMessage._meta.db_table} "
            "WHERE id = %s",
            [pk],
        )
        token, due = cursor.fetchone()
    return token, due


def test_a_lease_lost_in_a_crash_leaves_its_row_due_at_once_and_uncounted(wal_writer):
    queue = f"test.dbkill.{uuid.uuid4().hex[:8]}"
    provider = DatabaseProvider()
    with transaction.atomic():
        commit_waits()
        provider.producer().send_many(
            [Outgoing(queue, b"{}", DeliveryOptions(message_id=f"m{i}")) for i in range(2)]
        )
    wal_writer.hold()
    leases, length = Leases(provider.using), timedelta(minutes=10)
    kept, lost = uuid.uuid4(), uuid.uuid4()
    with transaction.atomic():  # the lease statement of a caller's transaction that waits
        commit_waits()
        (first,) = leases.lease(queue, length=length, token=kept, limit=1)
    (second,) = leases.lease(queue, length=length, token=lost, limit=1)  # unflushed
    assert row_state(second.id) == (lost, False)

    wal_writer.crash()

    assert row_state(first.id) == (kept, False), "a commit that waited was lost"
    assert row_state(second.id) == (None, True), "the unflushed lease survived the crash"
    assert leases.delete_many([second.id], lost) == 0  # the old holder's ack: nothing
    again = leases.lease(queue, length=length, token=uuid.uuid4(), limit=10)
    assert [(row.id, row.redelivered) for row in again] == [(second.id, False)]


def consume(marks: Path, name: str) -> subprocess.Popen:
    """Start ``kew_consume`` of the PLAIN queue; its commits wait for their WAL write."""
    database = {key: connection.settings_dict[key] for key in DATABASE_KEYS}
    options = {**database["OPTIONS"], "options": "-c synchronous_commit=on"}
    env = child_env(
        "tests.kew_django.batch_settings",
        KEW_TEST_DB=json.dumps({**database, "OPTIONS": options}),
        KEW_TEST_PROVIDER_URL=PROVIDER_URL,
        KEW_TEST_MARKS=str(marks),
    )
    with (marks / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "kew_consume", PLAIN],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def look() -> tuple[Counter[int], Counter[int]]:
    """Return each message's business rows and queued rows, read in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CAST(n AS text), true FROM {effects.TABLE} UNION ALL "
            f"SELECT message_id, false FROM {QueuedMessage._meta.db_table} WHERE queue = %s",
            [PLAIN],
        )
        rows = cursor.fetchall()
    done = Counter(int(n) for n, effect in rows if effect)
    queued = Counter(int(m.removeprefix(PREFIX)) for m, effect in rows if not effect)
    return done, queued


def each_once(done: Counter[int], queued: Counter[int]) -> None:
    """Assert that each message is queued once or handled once, never both, never neither."""
    twice = sorted(n for n, count in (done + queued).items() if count > 1)
    neither = sorted(set(range(MESSAGES)) - set(done) - set(queued))
    assert not twice and not neither, (
        f"twice (handled or queued): {twice}; neither handled nor queued: {neither}"
    )


def wait_for(
    handled_at_least: int,
    consumers: list[subprocess.Popen],
    marks: Path,
    before: set[int],
    *,
    at_risk: bool = False,
) -> set[int]:
    """Check ``each_once`` until ``handled_at_least`` messages are handled; return them.

    What was handled ``before`` stays handled: a handler's commit waited.
    ``at_risk``: wait also until some WAL is not written yet (a lease, mostly).
    """
    deadline = time.monotonic() + WAIT
    while True:
        done, queued = look()
        each_once(done, queued)
        assert before <= set(done), f"handled, then lost: {sorted(before - set(done))}"
        if len(done) >= handled_at_least and (not at_risk or wal_unwritten()):
            return set(done)
        for process in consumers:
            assert process.poll() is None, f"a consumer exited:\n{logs(marks)}"
        assert time.monotonic() < deadline, (
            f"{len(done)} of {MESSAGES} handled after {WAIT}s, {len(queued)} queued:\n{logs(marks)}"
        )
        time.sleep(0.02)


def wal_unwritten() -> bool:
    """Return whether the server holds WAL it has not written yet (lost in a crash)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn() > pg_current_wal_lsn()")
        (unwritten,) = cursor.fetchone()
    return unwritten


def logs(marks: Path, tail: int = 2000) -> str:
    """Return the consumers' output, the last ``tail`` characters of each."""
    return "\n".join(path.read_text()[-tail:] for path in sorted(marks.glob("*.log")))


def stop(process: subprocess.Popen) -> None:
    """SIGTERM ``process`` (a deploy) and wait for it to exit."""
    process.terminate()
    try:
        process.wait(WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def send_messages() -> None:
    """Queue ``MESSAGES`` messages in a commit that waits (they survive the first crash)."""
    with transaction.atomic():
        commit_waits()
        with DatabaseProvider().producer() as producer:
            producer.send_many(
                [
                    Outgoing(
                        PLAIN,
                        json.dumps({"n": n, "pause": PAUSE}).encode(),
                        DeliveryOptions(message_id=f"{PREFIX}{n}"),
                    )
                    for n in range(MESSAGES)
                ]
            )


def crash_mid_stream(wal_writer: WalWriter, consumers: list[subprocess.Popen], marks: Path) -> None:
    """Crash the server ``KILLS`` times while messages are handled; wait until all are."""
    handled: set[int] = set()
    for kill in range(1, KILLS + 1):
        share = MESSAGES * kill // (KILLS + 1)
        handled = wait_for(share, consumers, marks, handled, at_risk=True)
        assert len(handled) < MESSAGES, f"all handled before crash {kill}: nothing to crash into"
        wal_writer.crash()
    wait_for(MESSAGES, consumers, marks, handled)
    for process in consumers:
        assert process.poll() is None, f"a consumer exited:\n{logs(marks)}"


def test_consumers_lose_nothing_and_repeat_nothing_through_database_crashes(wal_writer, tmp_path):
    effects.create()
    try:
        send_messages()
        wal_writer.hold()
        consumers = [consume(tmp_path, f"consumer{i}") for i in range(2)]
        try:
            crash_mid_stream(wal_writer, consumers, tmp_path)
        finally:
            for process in consumers:
                stop(process)
        assert [p.returncode for p in consumers] == [0, 0], logs(tmp_path)
        done, queued = look()
        assert not queued and done == Counter(range(MESSAGES))
        assert not DeadLetter.objects.exists()
        # a crash may leave a held lease to run out (counted as a worker's death), once a
        # message per crash at most: KILLS <= MAX_CRASHES (3), so none is given up
        counts = dict(CrashCount.objects.filter(queue=PLAIN).values_list("message_id", "crashes"))
        assert all(crashes <= KILLS for crashes in counts.values()), counts
        texts = [path.read_text() for path in sorted(tmp_path.glob("*.log"))]
        assert all("available again" in text for text in texts), texts  # backed off, came back
        text = "\n".join(texts)
        # the crashes hit leases not yet written: "a batch failed as a whole (20 of 20
        # leases on ... are no longer this consumer's ...)", then each of its messages ran
        # alone and rolled back
        assert "leases on" in text, text
        runs = len((tmp_path / "ran").read_text().splitlines())
        print(
            f"handler runs: {runs} for {MESSAGES} messages; "
            f"batches whose leases were lost: {text.count('leases on')}; crash counts: {counts}"
        )
    finally:
        effects.drop()
