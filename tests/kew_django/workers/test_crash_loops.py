"""A message that kills its worker every time is given up, with its outcome.

A real ``kew_consume`` process handles a queue in which one message makes
the handler SIGKILL its own process. Like an orchestrator, the test starts
the process again each time it dies. After ``MAX_CRASHES`` (2 here) deaths
more than one, the message is given up through the normal path: a dead
letter (reason ``crashed``) and ``on_exhausted`` once; every other message
is handled exactly once. On the database provider (SQLite, PostgreSQL) and
on Artemis.
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
from kew.providers.base import DeliveryOptions
from kew_django.models import CrashCount, DeadLetter
from kew_django.providers.database import DatabaseProvider
from tests.harness.processes import Stall
from tests.kew_django.child_env import start_manage_py
from tests.kew_django.crash_app.consumers import QUEUE

ROOT = Path(__file__).resolve().parents[3]
MAX_CRASHES = 2  # tests/kew_django/crash_settings.py
MESSAGES = 12
POISON = 5
STALL = 20  # seconds without a handler starting, with a consumer up
pytestmark = pytest.mark.slow


def consume(provider_url: str, marks: Path) -> subprocess.Popen:
    return start_manage_py(
        "tests.kew_django.crash_settings",
        "kew_consume",
        QUEUE,
        KEW_TEST_PROVIDER_URL=provider_url,
        KEW_TEST_MARKS=str(marks),
    )


def lines(marks: Path, name: str) -> list[str]:
    path = marks / name
    return path.read_text().splitlines() if path.exists() else []


def progress(marks: Path) -> int:
    return sum(len(lines(marks, name)) for name in ("handled", "started-poison", "exhausted"))


def run_until_given_up(
    provider_url: str,
    marks: Path,
    timeout: float = 120,
    stalled: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """Keep one consumer process running, restarting it when it dies.

    Return its deaths and how many times ``stalled`` unblocked the run.
    ``stalled`` is called when there has been no progress for ``STALL``
    seconds; it returns whether it unblocked the run (Artemis's stranded
    delivery: a broker restart, docs/artemis.md), and the run fails if not.
    """
    deaths = 0
    process = consume(provider_url, marks)
    deadline = time.monotonic() + timeout
    stall = Stall(lambda: progress(marks), STALL, stalled)
    try:
        while time.monotonic() < deadline:
            done = len(lines(marks, "handled")) >= MESSAGES - 1 and lines(marks, "exhausted")
            if done:
                return deaths, stall.remedies
            stall.check(f"after {deaths} deaths")
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                assert process.returncode == -9, f"died otherwise ({process.returncode}):\n{output}"
                deaths += 1
                bound = MAX_CRASHES + 1 + stall.remedies
                assert deaths <= bound, "not given up after its bound:\n" + output
                process = consume(provider_url, marks)
            time.sleep(0.05)
        raise AssertionError(f"not done in {timeout}s after {deaths} deaths")
    finally:
        if process.poll() is None:
            process.terminate()
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output


def send_messages(provider) -> None:
    with provider.producer() as producer:
        for n in range(MESSAGES):
            data = {"n": n, "poison": n == POISON}
            producer.send(QUEUE, json.dumps(data).encode(), DeliveryOptions(message_id=f"m{n}"))


def check_outcome(marks: Path, deaths: int, restarts: int = 0) -> None:
    """Check the outcome; ``restarts`` of Artemis for a stranded delivery may add a run each.

    A stranded delivery comes back after the restart without ``redelivered``,
    so that run is not counted as a crash (docs/artemis.md, "Remedy").
    """
    # the bound: never fewer (one crash or deploy is no loop)
    assert MAX_CRASHES + 1 <= deaths <= MAX_CRASHES + 1 + restarts
    assert len(lines(marks, "started-poison")) == deaths
    assert lines(marks, "exhausted") == [f"{POISON} CrashLoop"]  # on_exhausted, once
    handled = Counter(lines(marks, "handled"))
    assert handled == Counter(str(n) for n in range(MESSAGES) if n != POISON)  # each once
    (letter,) = DeadLetter.objects.filter(queue=QUEUE)
    assert (letter.message_id, letter.reason) == (f"m{POISON}", DeadLetter.Reason.CRASHED)
    assert "ended without an outcome 3 times" in letter.error
    assert not CrashCount.objects.exists()  # every count ended with its message


def test_a_message_that_kills_its_worker_is_given_up_on_the_database_provider(
    transactional_db, tmp_path
):
    url = "database://?lease=1&poll_interval=0.1"  # a dead worker's lease ends within a second
    send_messages(DatabaseProvider())
    deaths, restarts = run_until_given_up(url, tmp_path)
    check_outcome(tmp_path, deaths, restarts)


@pytest.mark.artemis
def test_a_message_that_kills_its_worker_is_given_up_on_artemis(
    transactional_db, tmp_path, artemis_server
):
    provider = kew.connect(artemis_server.url)
    try:
        send_messages(provider)
        # Only Artemis's stranded delivery of the killed worker may hold it up.
        deaths, restarts = run_until_given_up(
            artemis_server.url,
            tmp_path,
            stalled=lambda: artemis_server.restart_for_stranded(QUEUE, 1),
        )
        check_outcome(tmp_path, deaths, restarts)
    finally:
        provider.close()


@pytest.mark.rabbitmq
def test_a_message_that_kills_its_worker_is_given_up_on_rabbitmq(
    transactional_db, tmp_path, rabbitmq_url
):
    provider = kew.connect(rabbitmq_url)
    try:
        send_messages(provider)
        deaths, restarts = run_until_given_up(rabbitmq_url, tmp_path)
        check_outcome(tmp_path, deaths, restarts)
    finally:
        provider.close()
