"""A deploy is not a crash: SIGTERM on real kew_consume processes, and the rows of a SIGKILLed one.

A long handler (``atomic=False``) is interrupted at its next progress
report and its message goes back with its delivery count unchanged; a
transactional handler gets ``SHUTDOWN_GRACE`` seconds; the process exits
0 within them. The "in progress" row of a SIGKILLed worker is cleared by
the next consumer process's sweep, and a cancel of it says it is not
running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kew.providers.base import DeliveryOptions
from kew.providers.headers import DELIVERY_COUNT
from kew_django import operations
from kew_django.models import DeadLetter, InProgress, ProcessedMessage, QueuedMessage
from kew_django.providers.database import DatabaseProvider
from tests.kew_django.management.test_commands import manage, wait_for
from tests.kew_django.sigterm_app.consumers import LONG_QUEUE, QUEUE

pytestmark = pytest.mark.slow
GRACE = 8.0
FAST = {"KEW_TEST_HEARTBEAT": "0.5", "KEW_TEST_GRACE": str(GRACE)}


def send(queue: str, *numbers: int) -> None:
    provider = DatabaseProvider()
    with provider.producer() as producer:
        for n in numbers:
            producer.send(queue, json.dumps({"n": n}).encode(), DeliveryOptions(message_id=f"m{n}"))
    provider.close()


def marks(tmp_path: Path, pattern: str) -> list[str]:
    return sorted(path.name for path in tmp_path.glob(pattern))


def terminate(process: subprocess.Popen) -> tuple[int, float, str]:
    """SIGTERM ``process``; return its exit code, how long it took to exit, and its output."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=GRACE + 20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"did not stop on SIGTERM:\n{output}")
    return process.returncode, time.monotonic() - sent, output


def test_sigterm_interrupts_a_long_handler_whose_message_runs_again_with_no_attempt_spent(
    transactional_db, tmp_path
):
    send(LONG_QUEUE, 1)
    env = {**FAST, "KEW_TEST_LONG_SECONDS": "60"}
    first = manage("kew_consume", LONG_QUEUE, tmp_path=tmp_path, **env)
    wait_for(lambda: marks(tmp_path, "1.*.started"), 30, "the long handler to start")
    wait_for(lambda: InProgress.objects.filter(queue=LONG_QUEUE).exists(), 10, "its row")
    code, took, output = terminate(first)
    assert code == 0, output
    assert took < 2.0, f"{took:.1f} s: the handler reports progress every 0.1 s\n{output}"
    assert "given back: shutting down" in output
    (row,) = QueuedMessage.objects.filter(queue=LONG_QUEUE)
    assert row.lease_token is None, "given back at once, not left to its lease"
    assert DELIVERY_COUNT not in (row.properties or {}), row.properties  # no attempt spent
    assert not InProgress.objects.exists() and not DeadLetter.objects.exists()
    assert not ProcessedMessage.objects.filter(consumer=LONG_QUEUE).exists()

    second = manage(
        "kew_consume", LONG_QUEUE, tmp_path=tmp_path, **{**env, "KEW_TEST_LONG_SECONDS": "1"}
    )
    wait_for(lambda: marks(tmp_path, "1.*.done"), 30, "the run on the restarted worker")
    code, _, output = terminate(second)
    assert code == 0, output
    started, done = marks(tmp_path, "1.*.started"), marks(tmp_path, "1.*.done")
    assert len(started) == 2 and len(done) == 1, started
    assert all(".attempt-1." in name for name in started), started  # both runs are attempt 1
    assert not marks(tmp_path, "*.failed"), "Interrupted is not an Exception"
    assert ProcessedMessage.objects.filter(consumer=LONG_QUEUE).count() == 1
    assert not QueuedMessage.objects.filter(queue=LONG_QUEUE).exists()
    assert not DeadLetter.objects.exists()


def test_a_transactional_handler_longer_than_the_grace_is_left_unacked_and_the_exit_is_0(
    transactional_db, tmp_path
):
    send(QUEUE, 1)
    env = {**FAST, "KEW_TEST_GRACE": "1", "KEW_TEST_HANDLER_SECONDS": "30"}
    process = manage("kew_consume", QUEUE, tmp_path=tmp_path, **env)
    wait_for(lambda: marks(tmp_path, "1.started"), 30, "the handler to start")
    code, took, output = terminate(process)
    assert code == 0, output
    assert 1.0 <= took < 3.0, f"{took:.1f} s for a grace of 1 s\n{output}"
    assert "still busy after the shutdown grace of 1 s" in output
    assert not ProcessedMessage.objects.filter(consumer=QUEUE).exists(), "rolled back, not acked"
    assert QueuedMessage.objects.filter(queue=QUEUE).count() == 1  # it comes back


def test_a_sigkilled_worker_s_row_is_cleared_by_the_next_process_and_a_cancel_says_so(
    transactional_db, tmp_path, settings
):
    settings.KEW = {**getattr(settings, "KEW", {}), "CONSUMERS": {"HEARTBEAT": 0.5}}  # as FAST
    send(LONG_QUEUE, 1)
    env = {**FAST, "KEW_TEST_LONG_SECONDS": "60"}
    killed = manage("kew_consume", LONG_QUEUE, tmp_path=tmp_path, **env)
    wait_for(lambda: InProgress.objects.filter(queue=LONG_QUEUE).exists(), 30, "its row")
    (row,) = InProgress.objects.filter(queue=LONG_QUEUE)
    assert f":{killed.pid}/" in row.worker
    assert operations.stopped_in_progress(InProgress.objects.all()) == []  # it runs
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=10)
    time.sleep(4 * 0.5)  # four missed beats: the row is stale
    row.refresh_from_db()  # left behind: nobody deleted it
    outcome = operations.cancel_in_progress(InProgress.objects.all(), by="test")
    assert (outcome.changed, outcome.skipped) == ([], 1), "a dead run is not asked to stop"
    assert InProgress.objects.get().cancel_requested_at is None

    send(LONG_QUEUE, 2)  # a second stale row, for the sweep of another consumer process
    InProgress.objects.create(
        queue=LONG_QUEUE, message_id="m2", worker="elsewhere:1/t", heartbeat_at=row.heartbeat_at
    )
    sweeper = manage("kew_consume", QUEUE, tmp_path=tmp_path, **env)  # another queue
    wait_for(lambda: not InProgress.objects.exists(), 20, "the sweep of the stopped rows")
    code, _, output = terminate(sweeper)
    assert code == 0, output
    assert "cleared 2 message(s) in progress of stopped workers" in output
    assert QueuedMessage.objects.filter(queue=LONG_QUEUE).count() == 2  # the messages stay


def test_sigterm_to_the_processes_supervisor_gives_back_every_long_run_and_exits_0(
    transactional_db, tmp_path
):
    send(LONG_QUEUE, 1, 2)
    env = {**FAST, "KEW_TEST_LONG_SECONDS": "60"}
    supervisor = manage("kew_consume", LONG_QUEUE, "--processes", "2", tmp_path=tmp_path, **env)
    wait_for(lambda: len(marks(tmp_path, "*.started")) == 2, 60, "a long run in each child")
    code, took, output = terminate(supervisor)
    assert code == 0, output
    assert took < 4.0, f"{took:.1f} s\n{output}"
    assert output.count("given back: shutting down") == 2, output
    rows = QueuedMessage.objects.filter(queue=LONG_QUEUE)
    assert rows.count() == 2 and not rows.filter(lease_token__isnull=False).exists()
    assert all(DELIVERY_COUNT not in (row.properties or {}) for row in rows)
    assert not marks(tmp_path, "*.failed") and not InProgress.objects.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_whole_group_stops_the_supervisor_s_children_as_one_request(
    transactional_db, tmp_path, signum
):
    """systemd signals every process of a unit, a terminal's Ctrl-C the whole group.

    Each child then gets the signal twice (once forwarded by the
    supervisor): still one request to stop, not "again to quit now".
    """
    send(LONG_QUEUE, 1, 2)
    env = {**FAST, "KEW_TEST_LONG_SECONDS": "60"}
    supervisor = manage(
        "kew_consume", LONG_QUEUE, "--processes", "2", tmp_path=tmp_path, new_session=True, **env
    )
    wait_for(lambda: len(marks(tmp_path, "*.started")) == 2, 60, "a long run in each child")
    os.killpg(supervisor.pid, signum)
    output, _ = supervisor.communicate(timeout=GRACE + 20)
    assert supervisor.returncode == 0, output
    assert output.count("given back: shutting down") == 2, output
    rows = QueuedMessage.objects.filter(queue=LONG_QUEUE)
    assert rows.count() == 2 and not rows.filter(lease_token__isnull=False).exists()
