"""Limits hold across real ``kew_consume`` processes on one database (SQLite or PostgreSQL).

Each test starts consumer processes (``tests/kew_django/limits/settings.py``,
the database provider on the test database) whose handlers mark their
start and end in files (``app/consumers.py``); the checks read those marks.
A handler marks its start after its slot is taken and its end before the
slot is given back, so overlapping marks never exceed the slots held.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kew.providers.base import DeliveryOptions
from kew_django.models import LimitSlot, ParkedMessage
from kew_django.providers.database import DatabaseProvider
from tests.harness.processes import wait_for
from tests.kew_django.child_env import child_env

ROOT = Path(__file__).resolve().parents[3]
# The queues of app/consumers.py, run by the processes; not imported here, which would
# register its consumers in this process too (and show their limits in kew_status).
CONCURRENCY, FAIR, RATE, KILL = "limits.concurrency", "limits.fair", "limits.rate", "limits.kill"
PROVIDER = "database://?lease=2&poll_interval=0.05"
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Mark:
    what: str
    n: int
    key: str
    pid: int
    at: float


def marks(folder: Path, queue: str) -> list[Mark]:
    path = folder / queue
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        what, n, key, pid, at = line.split()
        found.append(Mark(what, int(n), key, int(pid), float(at)))
    return found


def ends(folder: Path, queue: str) -> list[Mark]:
    return [m for m in marks(folder, queue) if m.what == "end"]


def most_at_once(found: list[Mark], key: str | None = None) -> int:
    """Return the most handlers (of ``key``) between their start and end marks at once."""
    events = sorted(
        (m.at, 0 if m.what == "end" else 1) for m in found if key is None or m.key == key
    )
    running = most = 0
    for _, starts in events:
        running += 1 if starts else -1
        most = max(most, running)
    return most


def send(queue: str, items: list[dict]) -> None:
    with DatabaseProvider().producer() as producer:
        for data in items:
            options = DeliveryOptions(message_id=f"{queue}-{data['n']}")
            producer.send(queue, json.dumps(data).encode(), options)


def start(queue: str, folder: Path, *, concurrency: int, **env: str) -> subprocess.Popen:
    environment = child_env(
        "tests.kew_django.limits.settings",
        KEW_TEST_PROVIDER_URL=PROVIDER,
        KEW_TEST_MARKS=str(folder),
        **env,
    )
    command = [sys.executable, str(ROOT / "manage.py"), "kew_consume", queue]
    return subprocess.Popen(
        [*command, "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def alive(running: list[subprocess.Popen]) -> None:
    """Fail at once if a consumer process ended by itself."""
    for process in running:
        if process.poll() is not None and process.returncode != -signal.SIGKILL:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"a consumer exited with {process.returncode}:\n{output}")


def waiting(running: list[subprocess.Popen], condition: Callable[[], Any]) -> Callable[[], Any]:
    """Return ``condition``, checking first that the consumers still run."""

    def check() -> Any:
        alive(running)
        return condition()

    return check


@contextmanager
def consumers(queue: str, folder: Path, *, processes: int = 3, **env: str) -> Iterator[list]:
    """Run ``processes`` consumer processes of 2 threads; stop them (SIGTERM) at the end."""
    running = [start(queue, folder, concurrency=2, **env) for _ in range(processes)]
    try:
        yield running
    except BaseException:
        stop(running)
        raise
    for process, output in zip(running, stop(running), strict=True):
        assert process.returncode in (0, -signal.SIGKILL), output


def stop(running: list[subprocess.Popen]) -> list[str]:
    """Stop the consumers with SIGTERM; return their output."""
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    return [process.communicate(timeout=60)[0] for process in running]


def test_three_processes_of_two_threads_handle_at_most_two_at_once(tmp_path):
    send(CONCURRENCY, [{"n": n} for n in range(200)])
    with consumers(CONCURRENCY, tmp_path) as running:
        done = waiting(running, lambda: len(ends(tmp_path, CONCURRENCY)) >= 200)
        wait_for(done, 180, "200 messages handled")
    found = marks(tmp_path, CONCURRENCY)
    assert most_at_once(found) == 2
    assert Counter(m.n for m in found if m.what == "end") == Counter(range(200))  # each once
    assert len({m.pid for m in found}) == 3  # every process took part
    assert not LimitSlot.objects.exists()  # every slot given back


def test_a_key_with_a_short_backlog_is_served_beside_a_long_one(tmp_path):
    """B's 20 messages, queued behind A's 500, finish before half of A's have.

    The bound (docs/backpressure.md): a message of B waits for the messages
    ahead of it on the broker queue to be received (A's are parked, one short
    transaction each), then B takes every other turn of the round-robin; A's
    backlog ahead of it does not count. Per key 1, limit 2: A and B each run
    one at a time, side by side.
    """
    send(FAIR, [{"n": n, "key": "A"} for n in range(500)])
    send(FAIR, [{"n": 500 + n, "key": "B"} for n in range(20)])
    with consumers(FAIR, tmp_path) as running:
        done = waiting(running, lambda: sum(m.key == "B" for m in ends(tmp_path, FAIR)) >= 20)
        wait_for(done, 180, "B's 20 handled")
        found = marks(tmp_path, FAIR)
    last_b = max(m.at for m in found if m.key == "B" and m.what == "end")
    a_before = sum(1 for m in found if m.key == "A" and m.what == "end" and m.at < last_b)
    print(f"A's messages handled when B's 20th finished: {a_before} of 500")
    assert a_before < 250
    assert most_at_once(found) <= 2
    assert most_at_once(found, "A") == 1 and most_at_once(found, "B") == 1
    b_order = [m.n for m in found if m.key == "B" and m.what == "start"]
    assert sorted(b_order) == list(range(500, 520))  # each once


@pytest.mark.one_leg(2)
def test_a_rate_limit_of_20_per_second_holds_over_30_seconds_across_three_processes(tmp_path):
    send(RATE, [{"n": n} for n in range(800)])
    with consumers(RATE, tmp_path) as running:
        every = waiting(running, lambda: len({m.pid for m in marks(tmp_path, RATE)}) == 3)
        wait_for(every, 60, "a start in each process")  # all three past their start-up
        first = time.time()
        wait_for(lambda: time.time() > first + 31, 40, "31 seconds of starts", poll=1)
    starts = sorted(m.at for m in marks(tmp_path, RATE) if m.at >= first)
    per_second = Counter(int(at - first) for at in starts if at < first + 30)
    figures = [per_second[s] for s in range(30)]
    print(f"starts per second over 30 s: {figures}")
    assert 540 <= sum(figures) <= 660  # 20 a second over the 30 s, within 10%
    assert max(figures) <= 22  # smooth: no second over 10% more (a slow second is the host's)


def test_a_slot_of_a_killed_worker_is_free_again_within_one_lease(tmp_path):
    lease = 2.0
    send(KILL, [{"n": 0, "slow": True}])
    env = {"KEW_TEST_LIMIT_LEASE": str(lease), "KEW_TEST_HEARTBEAT": "0.5"}
    with consumers(KILL, tmp_path, processes=2, **env) as running:
        slow = wait_for(waiting(running, lambda: marks(tmp_path, KILL)), 60, "a start")[0]
        assert slow.n == 0
        send(KILL, [{"n": n} for n in range(1, 6)])  # they wait for its slot
        time.sleep(1.5)  # held past its first lease: renewed by the heartbeat meanwhile
        assert [m.n for m in marks(tmp_path, KILL)] == [0]
        os.kill(slow.pid, signal.SIGKILL)
        killed_at = time.time()
        done = waiting(running, lambda: len(ends(tmp_path, KILL)) >= 6)
        wait_for(done, 60, "every message handled")
    found = marks(tmp_path, KILL)
    next_start = min(m.at for m in found if m.at > killed_at)
    print(f"slot free again {next_start - killed_at:.2f} s after the kill (lease {lease} s)")
    assert next_start - killed_at <= lease + 0.5
    killed = Mark("end", 0, "-", slow.pid, killed_at)  # its run ended with its process
    assert most_at_once([*found, killed]) == 1  # never two at once, the killed run included
    assert Counter(m.n for m in found if m.what == "end") == Counter(range(6))
    assert not ParkedMessage.objects.exists()
