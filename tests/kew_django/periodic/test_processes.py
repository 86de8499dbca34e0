"""Three real ``kew_run`` processes and a one-second job: one firing per tick, none lost.

The processes share the test database; one of them is SIGKILLed halfway
(the one that fired last). Ticks are counted by their time, so a process
that starts late or a ticker that wakes late under load changes nothing.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kew_django.models import OutboxMessage, PeriodicJob, ProcessedMessage
from kew_django.periodic_jobs.firing import tick_id
from tests.kew_django.child_env import child_env

ROOT = Path(__file__).resolve().parents[3]
JOB = "test.periodic.every-second"  # tick_app.consumers.JOB, not imported: it would register it
QUEUE = "test.periodic.ticks"
SECOND = timedelta(seconds=1)
FIRED = re.compile(rf"kew: periodic job {re.escape(JOB)} fired (\S+)")
pytestmark = [pytest.mark.slow, pytest.mark.one_leg(1)]


def start(name: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """Start ``manage.py kew_run`` on the test database; its output goes to ``<name>.log``."""
    env = child_env("tests.kew_django.periodic.settings", PYTHONUNBUFFERED="1")
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "kew_run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def fired_by(log: Path) -> list[str]:
    return FIRED.findall(log.read_text(errors="replace"))


def done_until() -> datetime | None:
    return PeriodicJob.objects.filter(name=JOB).values_list("done_until", flat=True).first()


def test_three_processes_fire_each_tick_once_and_lose_none_when_one_is_killed(
    transactional_db, tmp_path
):
    processes = [start(f"run{n}", tmp_path) for n in range(3)]
    try:
        for _, log in processes:
            wait_for(lambda log=log: "ticker started" in log.read_text(), 60, f"{log.name} start")
        first = wait_for(done_until, 10, "the job's row")
        window = (first, first + timedelta(seconds=30))
        wait_for(lambda: done_until() >= first + timedelta(seconds=15), 30, "half the window")
        last = max(processes, key=lambda p: max(fired_by(p[1]), default=""))
        last[0].send_signal(signal.SIGKILL)  # the process that fired most recently
        last[0].wait()
        killed_at = done_until()
        wait_for(lambda: done_until() >= window[1], 30, "the end of the window")
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in processes:
            process.wait(30)

    rows = OutboxMessage.objects.filter(queue=QUEUE)
    ticks = sorted(json.loads(bytes(row.payload))["tick"] for row in rows)
    in_window = [t for t in ticks if window[0] < datetime.fromisoformat(t) <= window[1]]
    assert 29 <= len(in_window) <= 31, in_window
    assert len(set(ticks)) == len(ticks), "a tick fired twice"
    seconds = [datetime.fromisoformat(t) for t in ticks]
    gaps = [(a, b) for a, b in zip(seconds, seconds[1:], strict=False) if b - a != SECOND]
    assert not gaps, f"ticks lost: {gaps}"
    assert {row.id for row in rows} == {tick_id(JOB, t) for t in seconds}
    logged = [tick for _, log in processes for tick in fired_by(log)]
    assert sorted(logged) == ticks, "each firing logged by exactly one process"
    assert PeriodicJob.objects.get(name=JOB).fired == len(ticks)
    survivors = [log for process, log in processes if process is not last[0]]
    assert killed_at is not None
    after_kill = [
        t for log in survivors for t in fired_by(log) if datetime.fromisoformat(t) > killed_at
    ]
    later = [t for t in ticks if datetime.fromisoformat(t) > killed_at]
    assert len(later) >= 10 and sorted(after_kill) == later, "the others fired the rest"
    handled = ProcessedMessage.objects.filter(consumer=QUEUE).values_list("message_id", flat=True)
    assert handled and set(handled) <= {str(row.id) for row in rows}, "relayed and consumed"
