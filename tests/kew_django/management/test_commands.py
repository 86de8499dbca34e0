"""manage.py kew_relay / kew_consume in a subprocess: SIGTERM finishes the work in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kew.providers.base import DeliveryOptions
from kew_django import Channel
from kew_django.models import OutboxMessage, ProcessedMessage, QueuedMessage
from kew_django.providers.database import DatabaseProvider
from tests.kew_django.child_env import child_env
from tests.kew_django.sigterm_app.consumers import QUEUE

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def manage(*args: str, tmp_path: Path, new_session: bool = False, **env: str) -> subprocess.Popen:
    environment = child_env(
        "tests.kew_django.subprocess_settings", KEW_TEST_MARKS=str(tmp_path), **env
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"did not stop on SIGTERM:\n{output}")
    assert process.returncode == 0, output
    return output


def test_sigterm_during_consume_finishes_and_acks_the_message_in_hand(transactional_db, tmp_path):
    provider = DatabaseProvider()
    with provider.producer() as producer:
        for n in range(5):
            producer.send(QUEUE, json.dumps({"n": n}).encode(), DeliveryOptions(message_id=f"m{n}"))
    process = manage("kew_consume", QUEUE, tmp_path=tmp_path, KEW_TEST_HANDLER_SECONDS="1")
    wait_for(lambda: list(tmp_path.glob("*.started")), 30, "the first handler to start")
    output = stop(process)
    started = len(list(tmp_path.glob("*.started")))
    assert 1 <= started < 5
    assert ProcessedMessage.objects.filter(consumer=QUEUE).count() == started, output
    remaining = QueuedMessage.objects.filter(queue=QUEUE)
    assert remaining.count() == 5 - started
    assert not remaining.filter(lease_token__isnull=False).exists(), "a lease was left behind"
    assert "SIGTERM received" in output and "consume test.sigterm" in output
    provider.close()


def test_sigterm_during_relay_finishes_the_batch_in_flight(
    transactional_db, outbox_sends, tmp_path
):
    Channel("test.sigterm.relay").send_many([{"n": n} for n in range(3000)])
    process = manage("kew_relay", "--batch-size", "50", tmp_path=tmp_path)
    wait_for(lambda: OutboxMessage.objects.filter(status="sent").exists(), 30, "a first batch")
    output = stop(process)
    sent = set(map(str, OutboxMessage.objects.filter(status="sent").values_list("pk", flat=True)))
    queued = set(QueuedMessage.objects.values_list("message_id", flat=True))
    assert sent == queued, "every row marked sent is published, and only those"
    assert OutboxMessage.objects.filter(status="pending").count() == 3000 - len(sent)
    assert "relay:" in output and "stopped" in output


def test_kew_run_relays_and_consumes_in_one_process(transactional_db, outbox_sends, tmp_path):
    Channel(QUEUE).send_many([{"n": n} for n in range(3)])
    process = manage("kew_run", tmp_path=tmp_path, KEW_TEST_HANDLER_SECONDS="0")
    wait_for(
        lambda: ProcessedMessage.objects.filter(consumer=QUEUE).count() == 3,
        30,
        "three messages relayed and handled",
    )
    output = stop(process)
    assert OutboxMessage.objects.filter(status="sent").count() == 3
    assert not QueuedMessage.objects.exists()
    assert "started the relay and test.sigterm" in output
