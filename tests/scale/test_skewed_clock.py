"""Workers whose clocks are a minute off, beside a normal one, on the database provider.

Each skewed worker runs ``skewed_clock/sitecustomize.py``: its
``time.time()``, ``datetime.now()`` and ``timezone.now()`` are shifted by
``SKEW``. Leases are 3 s and renewed every second, so a handler that
sleeps ``HOLD`` seconds keeps its message only through its renewals.
Messages go straight into the queue table, due at the database's time;
the ``plain`` consumer records an effect on every delivery, so a message
taken by two workers shows as two effects.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.harness.processes import consume, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.one_leg(1)]

SKEW = 60.0
HOLD = 15.0  # five leases
BROKER = "database://?lease=3&poll_interval=0.05"
SHIM = Path(__file__).resolve().parent / "skewed_clock"


def skewed(env: dict[str, str], seconds: float) -> dict[str, str]:
    """``env`` of a process whose wall clock is ``seconds`` off."""
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([str(SHIM), env["PYTHONPATH"]]),
        "KEW_CLOCK_SKEW": str(seconds),
    }


def put(database, queue: str, n: int, *, sleep: float = 0.0, delay: float = 0.0) -> float:
    """Queue message ``n``, due ``delay`` s from the database's now; return when (its epoch)."""
    payload = json.dumps({"n": n, "sleep": sleep} if sleep else {"n": n}).encode()
    rows = database.query(
        "insert into kew_django_queuedmessage "
        "(queue, payload, message_id, properties, available_at, redelivered, created_at) "
        "values (%s, %s, %s, '{}', statement_timestamp() + %s * interval '1 second', false, "
        "statement_timestamp()) returning extract(epoch from available_at)",
        queue,
        payload,
        str(uuid.uuid4()),
        delay,
    )
    return float(rows[0][0])


def database_time(database) -> float:
    return float(database.query("select extract(epoch from statement_timestamp())")[0][0])


def taken(database, queue: str) -> bool:
    """Whether a worker holds a message of ``queue`` (whether or not its lease looks over)."""
    rows = database.query(
        "select count(*) from kew_django_queuedmessage where queue = %s "
        "and lease_token is not null",
        queue,
    )
    return int(rows[0][0]) > 0


def waiting(database, queue: str) -> int:
    rows = database.query("select count(*) from kew_django_queuedmessage where queue = %s", queue)
    return int(rows[0][0])


def handlers_of(database, queue: str, n: int) -> list[str]:
    """The workers that handled message ``n``, in order."""
    return [worker for number, worker, _ in database.effects(queue) if number == n]


def hold_then_probe(database, queue, logs, holder_env, other_env) -> tuple[float, float, bool]:
    """Let ``holder`` hold message 0 for HOLD s, start ``other``, probe it with message 1.

    Return when the probe was handled (by ``other``'s clock), the database's
    time then, and whether message 0 was still held then.
    """
    put(database, queue, 0, sleep=HOLD)
    holder = consume("holder", holder_env, logs, queue)
    other = None
    try:
        wait_for(lambda: taken(database, queue), 60, "the holder's lease")
        other = consume("other", other_env, logs, queue)
        put(database, queue, 1)
        wait_for(lambda: handlers_of(database, queue, 1), 60, "the probe handled")
        now, held = database_time(database), taken(database, queue)
        wait_for(lambda: not waiting(database, queue), HOLD + 30, "the held message handled")
        time.sleep(1.0)  # a second effect, if the other worker took it too, would show
    finally:
        for worker in (holder, other):
            if worker is not None:
                worker.stop()
    handled_at = [at for n, _, at in database.effects(queue) if n == 1][0]
    return handled_at, now, held


def test_a_worker_whose_clock_runs_ahead_does_not_take_a_lease_held_and_renewed_by_another(
    scale_db, prefix, tmp_path
):
    queue = f"{prefix}.plain"
    env = scale_db.env(BROKER, KEW_SCALE_QUEUES=prefix)
    handled_at, now, held = hold_then_probe(scale_db, queue, tmp_path, env, skewed(env, SKEW))
    assert handlers_of(scale_db, queue, 0) == ["holder"]
    assert handlers_of(scale_db, queue, 1) == ["other"]
    assert held, "the other worker ran while message 0 was held"
    assert handled_at - now > SKEW / 2, "the other worker's clock runs ahead"


def test_a_worker_whose_clock_runs_behind_keeps_its_lease_by_renewing_it(
    scale_db, prefix, tmp_path
):
    queue = f"{prefix}.plain"
    env = scale_db.env(BROKER, KEW_SCALE_QUEUES=prefix)
    _, _, held = hold_then_probe(scale_db, queue, tmp_path, skewed(env, -SKEW), env)
    assert handlers_of(scale_db, queue, 0) == ["holder"]
    assert handlers_of(scale_db, queue, 1) == ["other"]
    assert held, "the other worker ran while message 0 was held"


def test_a_worker_whose_clock_runs_ahead_gets_a_scheduled_message_no_earlier_than_it_is_due(
    scale_db, prefix, tmp_path
):
    queue = f"{prefix}.plain"
    env = scale_db.env(BROKER, KEW_SCALE_QUEUES=prefix)
    ahead = consume("ahead", skewed(env, SKEW), tmp_path, queue)
    try:
        put(scale_db, queue, 1)
        wait_for(lambda: handlers_of(scale_db, queue, 1), 60, "the skewed worker ready")
        due = put(scale_db, queue, 2, delay=8.0)
        while database_time(scale_db) < due - 0.3:
            assert not handlers_of(scale_db, queue, 2), "delivered before it was due"
            time.sleep(0.1)
        wait_for(lambda: handlers_of(scale_db, queue, 2), 10, "the scheduled message handled")
    finally:
        ahead.stop()
    assert handlers_of(scale_db, queue, 2) == ["ahead"]
