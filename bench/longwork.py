"""Long work, measured in one run: web latency during a long import, recovery, heartbeat cost.

    .venv/bin/python bench/longwork.py

1. SQLite (the embedded default), web + kew_run as real processes: the
   latency of ``POST /imports/`` while a long import runs, with the import
   in one transaction (the old mode, ``bench/longwork_settings.py``)
   and outside it (the new mode), side by side.
2. On each provider (database on SQLite, database on PostgreSQL, Artemis),
   two import workers with the DEFAULT lease: the time from SIGKILL of the
   worker running a long import to that import running again (the
   scripted importer records each run's start), and whether two runs ever
   overlapped.
3. Heartbeat cost: the heartbeat's write transactions (and statements)
   per second for one worker running one long delivery, on SQLite.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from project.imports.samples import create_sample  # noqa: E402
from tests.harness.e2e import (  # noqa: E402
    Process,
    SMTPServer,
    WebServer,
    app_env,
    create_token,
    manage,
    wait_until,
)

REQUESTS = 40


def environment(
    tmp: Path, smtp: SMTPServer, settings: str = "project.settings", **overrides: str
) -> tuple[Path, Path, dict]:
    root, logs = tmp / "root", tmp / "logs"
    root.mkdir()
    logs.mkdir()
    for name in ("long-2", "long-6", *(f"ok-{n}" for n in range(REQUESTS))):
        create_sample(root, name)
    env = app_env(
        DJANGO_SETTINGS_MODULE=settings,
        EMAIL_URL=smtp.url,
        IMPORT_ROOTS=str(root),
        IMPORT_IMPORTER="project.imports.testing.ScriptedImporter",
        KEW_LOG_LEVEL="INFO",
        **overrides,
    )
    manage(["migrate", "--noinput"], env)
    return root, logs, env


def runs(root: Path, name: str) -> list[tuple[int, float]]:
    path = root / f"{name}.runs"
    if not path.exists():
        return []
    return [(int(p), float(t)) for p, t in (line.split() for line in path.read_text().splitlines())]


def latency(one_transaction: bool) -> list[float]:
    """POST /imports/ latencies (s) on SQLite while a 10 s import runs; failures count as 30 s."""
    with tempfile.TemporaryDirectory() as tmp, SMTPServer() as smtp:
        root, logs, env = environment(
            Path(tmp),
            smtp,
            "bench.longwork_settings" if one_transaction else "project.settings",
            DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
        )
        env.pop("KEW_BROKER_URL", None)
        web = WebServer(env, logs, token=create_token(env)).start()
        kew = Process("kew_run", ["kew_run"], env, logs, ready="kew: started").start()
        try:
            web.request("POST", "/imports/", {"path": "long-2"})
            wait_until(lambda: runs(root, "long-2"), 20, 0.05)
            time.sleep(2.2)  # inside the first file's wait: the import holds its transaction
            timings = []
            for n in range(REQUESTS):
                begun = time.monotonic()
                status, _ = web.request("POST", "/imports/", {"path": f"ok-{n}"})
                timings.append(time.monotonic() - begun if status == 202 else 30.0)
                time.sleep(0.1)
            return timings
        finally:
            kew.stop()
            web.stop()


def recovery(label: str, database_url: str, broker_url: str | None) -> tuple[float, bool]:
    """Seconds from SIGKILL of the worker running long-6 (30 s) to its next run; any overlap."""
    with tempfile.TemporaryDirectory() as tmp, SMTPServer() as smtp:
        overrides = {"DATABASE_URL": database_url}
        if broker_url:
            overrides["KEW_BROKER_URL"] = broker_url
        root, logs, env = environment(Path(tmp), smtp, **overrides)
        if not broker_url:
            env.pop("KEW_BROKER_URL", None)
        web = WebServer(env, logs, token=create_token(env)).start()
        relay = Process("relay", ["kew_relay"], env, logs, ready="relay: started").start()
        workers = [
            Process(f"w{n}", ["kew_consume", "imports"], env, logs, ready="kew: started").start()
            for n in range(2)
        ]
        try:
            web.request("POST", "/imports/", {"path": "long-6"})
            wait_until(lambda: runs(root, "long-6"), 30, 0.05)
            time.sleep(3)
            ((pid, _),) = runs(root, "long-6")
            holder = next(w for w in workers if w.popen and w.popen.pid == pid)
            holder.stop(signal.SIGKILL)
            killed = time.time()
            wait_until(lambda: len(runs(root, "long-6")) > 1, 90, 0.05)
            taken = runs(root, "long-6")
            overlap = (root / "long-6.overlaps").exists()
            return (taken[1][1] - killed if len(taken) > 1 else float("inf")), overlap
        finally:
            for process in (*workers, relay, web):
                process.stop()


HEARTBEAT_SCRIPT = """
import threading, time
from django.db import connection
from kew_django.models import InProgress
from kew_django.providers.database import DatabaseProvider
from kew_django.outbox.channel import Channel
from kew_django.relay.publisher import Relay
from kew_django.workers import pacemaker
from kew_django.workers.registry import ConsumerSpec
from kew_django.workers.worker import Worker

counts = {"statements": 0, "writes": 0}
loop = pacemaker.Pacemaker._loop
def counted(self):
    def wrapper(execute, sql, params, many, context):
        counts["statements"] += 1
        counts["writes"] += sql.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))
        return execute(sql, params, many, context)
    with connection.execute_wrapper(wrapper):
        loop(self)
pacemaker.Pacemaker._loop = counted

provider = DatabaseProvider()  # the default lease
Channel("bench.long").send({"n": 1})
Relay(provider).relay_all()
def handler(data, work):
    for n in range(200):
        work.progress(n, 200, "working")
        time.sleep(0.1)
worker = Worker(ConsumerSpec("bench.long", handler, atomic=False), provider)
with provider.receiver("bench.long") as receiver:
    delivery = receiver.receive(5)
    started = time.monotonic()
    worker.handle(delivery)
    elapsed = time.monotonic() - started
print(f"RESULT {elapsed:.1f} {counts['writes']} {counts['statements']} {worker.heartbeat_interval}")
"""


def heartbeat_cost() -> tuple[float, int, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(DJANGO_SETTINGS_MODULE="project.settings", DATABASE_URL=f"sqlite:///{tmp}/db")
        env.pop("KEW_BROKER_URL", None)
        manage(["migrate", "--noinput"], env)
        line = manage(["shell", "-c", HEARTBEAT_SCRIPT], env).strip().splitlines()[-1]
        _, elapsed, writes, statements, interval = line.split()
        return float(elapsed), int(writes), int(statements), float(interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    from tests.harness.artemis import ArtemisServer
    from tests.harness.postgres import PostgresServer

    print("Long work: web latency, recovery after SIGKILL, heartbeat cost (one run)\n")
    print(f"POST /imports/ on SQLite while a long import runs ({REQUESTS} requests, 0.1 s apart)")
    for label, old in (
        ("old: import in one transaction", True),
        ("new: outside, short commits", False),
    ):
        timings = latency(old)
        failed = sum(t >= 30.0 for t in timings)
        print(
            f"  {label:34} p50 {percentile(timings, 0.5) * 1000:8.1f} ms   "
            f"p99 {percentile(timings, 0.99) * 1000:8.1f} ms   max {max(timings) * 1000:8.1f} ms"
            f"   not 202: {failed}"
        )
    print(
        "\nSIGKILL of the worker running a 30 s import -> the import running again (default lease)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("database provider, SQLite (lease 30 s)", f"sqlite:///{tmp}/r.sqlite3", None)]
        with PostgresServer() as postgres, ArtemisServer() as artemis:
            name = f"bench_{uuid.uuid4().hex[:8]}"
            postgres.create_database(name)
            other = f"bench_{uuid.uuid4().hex[:8]}"
            postgres.create_database(other)
            cases.append(
                ("database provider, PostgreSQL (lease 30 s)", postgres.url_for(name), None)
            )
            cases.append(("Artemis (PostgreSQL for the app)", postgres.url_for(other), artemis.url))
            for label, database_url, broker_url in cases:
                seconds, overlap = recovery(label, database_url, broker_url)
                print(
                    f"  {label:44} {seconds:6.1f} s   runs overlapped: {'YES' if overlap else 'no'}"
                )
    elapsed, writes, statements, interval = heartbeat_cost()
    print(
        f"\nHeartbeat cost, one worker, one {elapsed:.0f} s delivery on SQLite (beat {interval} s)"
    )
    print(
        f"  {writes / elapsed:.2f} write statements/s, {statements / elapsed:.2f} statements/s "
        f"(progress reported 10x a second: the beat writes only the latest)"
    )


if __name__ == "__main__":
    main()
