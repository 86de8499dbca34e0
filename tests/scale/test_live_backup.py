"""Kew on a replicated live/backup pair: the live broker SIGKILLed mid-run, the backup takes over.

The relay and the consumer list both brokers in their URL (primary
first); when the primary dies they reconnect to the backup, which has
the replicated journal: every receipted message, the scheduled ones,
the consumers' pending retries and the duplicate-id cache.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import kew
from kew.providers.base import DeliveryOptions
from tests.harness.processes import consume, manage, relay, wait_for
from tests.scale.test_cluster import send, settle

pytestmark = [pytest.mark.slow, pytest.mark.artemis, pytest.mark.one_leg(2)]

DELAY = 12.0  # seconds until the scheduled messages are due (after the failover)
RETRY = 5.0  # the timed consumer's retry interval
FAILOVER = 30.0  # the longest a failover may make a message late


def test_the_backup_takes_over_with_receipted_scheduled_retried_and_deduplicated_messages(
    artemis_pair, scale_db, prefix, tmp_path
):
    work, timed, count = f"{prefix}.work", f"{prefix}.timed", 1000
    marks = tmp_path / "marks"
    marks.mkdir()
    env = scale_db.env(artemis_pair.url, KEW_SCALE_QUEUES=prefix, KEW_SCALE_MARKS=str(marks))
    processes = [
        relay("relay", env, tmp_path, "--batch-size", "50"),
        consume("consumer", env, tmp_path, work, timed),
    ]
    direct = kew.connect(artemis_pair.url, reconnect_attempts=12)
    dedup = f"{prefix}.dedup"
    try:
        for process in processes:
            process.wait_output("started")
        with direct.producer() as producer:
            producer.send(dedup, b"first", DeliveryOptions(message_id="same-id"))
        sender = send(scale_db, work, count, pause=0.1, wait=False)
        wait_for(lambda: scale_db.distinct(work) >= 150, 60, "150 work messages handled")
        manage(["scale_send", timed, "--count", "10", "--delay", str(DELAY)], env)
        manage(["scale_send", timed, "--count", "10", "--start", "100", "--fail-first"], env)
        wait_for(lambda: len(list(marks.iterdir())) == 10, 60, "ten first attempts failed")
        assert scale_db.distinct(timed) < 10, "the retries and scheduled messages are pending"
        artemis_pair.primary.kill()
        killed = time.time()
        artemis_pair.wait_active(artemis_pair.backup)
        print(f"\nlive/backup: the backup was active {time.time() - killed:.1f} s after the kill")
        assert sender.wait(120) == 0
        wait_for(lambda: scale_db.distinct(work) == count, 120, "every work message handled")
        wait_for(lambda: scale_db.distinct(timed) == 20, 60, "scheduled and retried handled")
        settle(lambda: processes[1].duplicates(work), quiet=3.0)
        with direct.producer() as producer:  # the backup knows the id cache of the primary
            producer.send(dedup, b"again", DeliveryOptions(message_id="same-id"))
        receiver = direct.receiver(dedup)
        got = []
        while (delivery := receiver.receive(timeout=3)) is not None:
            got.append(delivery.payload)
            delivery.ack()
        receiver.close()
    finally:
        direct.close()
        for process in processes:
            process.stop()
    assert got == [b"first"], "the duplicate id was recognised by the backup"
    effects = scale_db.effects(work)
    assert len(effects) == count and scale_db.unsent() == 0, "nothing receipted was lost"
    duplicates = processes[1].duplicates(work)
    print(f"live/backup: {duplicates} duplicate deliveries absorbed by the idempotent consumer")
    on_time = timings(scale_db.effects(timed), scale_db, timed, marks)
    for n, late in on_time.items():
        assert -0.5 <= late <= FAILOVER, f"message {n} handled {late:+.1f} s from its due time"
    print(
        f"live/backup: scheduled and retried messages {min(on_time.values()):+.1f} to "
        f"{max(on_time.values()):+.1f} s from their due times"
    )


def timings(effects, database, queue, marks: Path) -> dict[int, float]:
    """Seconds between each timed message's due time and its handling (negative: early)."""
    dues = {
        int(n): float(due)
        for n, due in database.query(
            "select (convert_from(payload, 'UTF8')::jsonb->>'n')::int, "
            "extract(epoch from deliver_at)::float "
            "from kew_django_outboxmessage where queue = %s and deliver_at is not null",
            queue,
        )
    }
    for mark in marks.iterdir():
        dues[int(mark.stem.split(".")[0])] = float(mark.read_text()) + RETRY
    assert len(dues) == 20, dues
    return {n: at - dues[n] for n, _, at in effects}
