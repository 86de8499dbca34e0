"""Limits: the cost of a concurrency limit per message, and the rate limiter's precision.

Usage::

    .venv/bin/python bench/limits.py [--count 3000] [--rate-seconds 20] [--database both]

For PostgreSQL (started by ``tests.harness``, then set to production
durability: fsync, full_page_writes and synchronous_commit on, as
``bench/soak.py`` does) and for SQLite (a WAL file, IMMEDIATE
transactions), on the database provider: ``--count`` trivial messages are
queued, then 2 ``kew_consume`` processes of 2 threads handle them; the
throughput is ``count`` over the time until the queue is empty. Three
consumers (``tests/kew_django/limits/app``): no limit; ``limit=4`` (never
refuses with 4 threads: the cost of the slot itself); ``limit=2`` (threads
wait). Then 3 processes consume a queue limited to 20 starts a second for
``--rate-seconds``: the starts per second, their mean and spread. A
script, not a test: figures are printed as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from subprocess import DEVNULL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MANAGE = [sys.executable, str(ROOT / "manage.py")]
# The queues of tests/kew_django/limits/app/consumers.py (not imported: it needs Django set up).
FREE, LIMITED, TWO, RATE = (
    "limits.bench.free",
    "limits.bench.limited",
    "limits.bench.two",
    "limits.rate",
)
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.database in ("postgresql", "both"):
            from bench.durability import durable
            from tests.harness.postgres import PostgresServer

            postgres = stack.enter_context(PostgresServer())
            name = f"kew_limits_{uuid.uuid4().hex[:8]}"
            postgres.create_database(name)
            durable(postgres.url_for(name), name)
            run(f"PostgreSQL ({postgres.mode})", postgres.django_database(NAME=name), folder, args)
        if args.database in ("sqlite", "both"):
            database = {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(folder / "limits.sqlite3"),
                "OPTIONS": SQLITE_OPTIONS,
            }
            run("SQLite (WAL file)", database, folder, args)


def environment(database: dict, marks: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KEW_TEST"))},
        "DJANGO_SETTINGS_MODULE": "tests.kew_django.limits.settings",
        "KEW_TEST_DB": json.dumps(database),
        "KEW_TEST_PROVIDER_URL": "database://?poll_interval=0.05",
        "KEW_TEST_MARKS": str(marks),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


def run(where: str, database: dict, folder: Path, args: argparse.Namespace) -> None:
    marks = folder / uuid.uuid4().hex[:8]
    marks.mkdir()
    env = environment(database, marks)
    subprocess.run([*MANAGE, "migrate", "--verbosity", "0"], env=env, check=True, cwd=ROOT)
    print(f"\n{where}: {args.count} trivial messages, 2 processes x 2 threads", flush=True)
    for queue, what in ((FREE, "no limit"), (LIMITED, "limit=4"), (TWO, "limit=2")):
        rate = throughput(queue, args.count, env)
        print(f"  {what:<9} {rate:7.1f} messages/s", flush=True)
    rate_precision(RATE, args.rate_seconds, env, marks)


def shell(code: str, env: dict[str, str]) -> str:
    """Run ``code`` in ``manage.py shell`` on the bench's database; return what it printed."""
    done = subprocess.run(
        [*MANAGE, "shell", "-c", code], env=env, check=True, cwd=ROOT, capture_output=True
    )
    return done.stdout.decode()


def send(queue: str, count: int, env: dict[str, str]) -> None:
    shell(
        "import json\n"
        "from kew_django.providers.database import DatabaseProvider\n"
        "with DatabaseProvider().producer() as p:\n"
        f"    [p.send({queue!r}, json.dumps({{'n': n}}).encode()) for n in range({count})]\n",
        env,
    )


def waiting(queue: str, env: dict[str, str]) -> int:
    """Count the queue's rows, on a connection of this process (no Django start-up per look)."""
    database = json.loads(env["KEW_TEST_DB"])
    sql = "SELECT count(*) FROM kew_django_queuedmessage WHERE queue = "
    if database["ENGINE"].endswith("sqlite3"):
        with contextlib.closing(sqlite3.connect(database["NAME"], timeout=20)) as connection:
            return int(connection.execute(sql + "?", (queue,)).fetchone()[0])
    import psycopg

    where = {k.lower(): database[k] for k in ("NAME", "USER", "PASSWORD", "HOST", "PORT")}
    where["dbname"] = where.pop("name")
    with psycopg.connect(autocommit=True, **where) as connection:
        row = connection.execute(sql + "%s", (queue,)).fetchone()
        return int(row[0]) if row else 0


def consumers(queue: str, processes: int, env: dict[str, str]) -> list[subprocess.Popen]:
    command = [*MANAGE, "kew_consume", queue, "--concurrency", "2"]
    return [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=DEVNULL, stderr=DEVNULL)
        for _ in range(processes)
    ]


def stop(running: list[subprocess.Popen]) -> None:
    for process in running:
        process.terminate()
    for process in running:
        process.wait(timeout=60)


def throughput(queue: str, count: int, env: dict[str, str]) -> float:
    """Return messages per second: ``count`` queued messages handled by 2 processes."""
    send(queue, count, env)
    running = consumers(queue, 2, env)
    try:
        while waiting(queue, env) == count:  # not started yet (the processes start)
            time.sleep(0.05)
        started = time.monotonic()
        while waiting(queue, env) > 0:
            time.sleep(0.05)
        return count / (time.monotonic() - started)
    finally:
        stop(running)


def rate_precision(queue: str, seconds: float, env: dict[str, str], marks: Path) -> None:
    """Print the starts per second of a queue limited to 20/s, consumed by 3 processes."""
    send(queue, int(seconds * 20 * 1.5) + 100, env)
    running = consumers(queue, 3, env)
    path = marks / queue
    try:
        while not path.exists():
            time.sleep(0.05)
        time.sleep(seconds + 1.5)
    finally:
        stop(running)
    starts = sorted(float(line.split()[4]) for line in path.read_text().splitlines())
    first = starts[0]
    per_second = Counter(int(at - first) for at in starts if at < first + seconds)
    counts = [per_second[s] for s in range(int(seconds))]
    mean = sum(counts) / len(counts)
    print(
        f"  rate limit 20/s, 3 processes x 2 threads, {len(counts)} s: "
        f"mean {mean:.2f}/s ({100 * (mean - 20) / 20:+.1f}%), "
        f"per second min {min(counts)} max {max(counts)} stdev {statistics.pstdev(counts):.2f}",
        flush=True,
    )
    print(f"  starts per second: {counts}", flush=True)


if __name__ == "__main__":
    main()
