"""The database provider on PostgreSQL with several consumer processes (SKIP LOCKED).

The handler of ``<prefix>.plain`` is not idempotent and records an effect
on every delivery, so a message leased to two processes would show as
two effects. Each handler sleeps 50 ms, as an I/O-bound task would: the
database work per message is small, and more processes handle more
messages at once.
"""

from __future__ import annotations

import pytest

from tests.harness.processes import consume, manage, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.one_leg(1)]

COUNT = 120
SLEEP = 0.05


def run(database, prefix: str, processes: int, logs) -> float:
    """Queue COUNT messages, handle them with ``processes`` consumers; return messages/s."""
    queue = f"{prefix}.plain"
    env = database.env("database://?poll_interval=0.05", KEW_SCALE_QUEUES=prefix)
    manage(["scale_send", queue, "--count", str(COUNT), "--sleep", str(SLEEP), "--direct"], env)
    workers = [consume(f"db-{processes}-{i}", env, logs, queue) for i in range(processes)]
    try:
        wait_for(lambda: len(database.effects(queue)) >= COUNT, 120, f"{COUNT} handled")
    finally:
        for worker in workers:
            worker.stop()
    effects = database.effects(queue)
    assert len(effects) == COUNT, f"{len(effects) - COUNT} messages were handled twice"
    assert {n for n, _, _ in effects} == set(range(COUNT))
    if processes > 1:
        assert len({worker for _, worker, _ in effects}) == processes, "every process got work"
    first, last = effects[0][2], effects[-1][2]
    return (COUNT - 1) / (last - first)


def test_database_provider_consumer_processes_never_share_a_message_and_add_throughput(
    scale_db, prefix, tmp_path
):
    one = run(scale_db, f"{prefix}a", 1, tmp_path)
    four = run(scale_db, f"{prefix}b", 4, tmp_path)
    print(
        f"\ndatabase provider, {SLEEP * 1000:.0f} ms handlers: 1 process {one:.0f} msg/s, "
        f"4 processes {four:.0f} msg/s"
    )
    assert four > 1.5 * one, (one, four)
