"""Soak: messages sent in transactions while relays, consumers, the broker and the database crash.

Usage::

    .venv/bin/python bench/soak.py [--count 10000] [--relay-kills 20] [--consumer-kills 20]
        [--broker-crashes 3] [--db-crashes 1] [--db-outage 0] [--provider artemis|rabbitmq|database]
        [--database postgresql|sqlite] [--relay-terms 5] [--consumer-terms 5] [--crash-loops 3]

It starts PostgreSQL (and Artemis or a RabbitMQ node) with ``tests.harness``, migrates a fresh
database (``--database sqlite``: a fresh SQLite file, with the embedded
default's settings, instead of PostgreSQL), and runs one ``kew_relay`` and
two ``kew_consume`` processes (``bench/soak_app``: each message adds a row
to ``soak_effect``). A sender writes ``--count`` messages in transactions of
10, paced to last as long as the crashes: some transactions are rolled
back, some messages are poison (``PermanentError``), some answer RETRY
once, and ``--crash-loops`` of them SIGKILL their consumer every time.
Meanwhile, at random moments, the relay and the consumers are SIGKILLed
and restarted, or stopped with SIGTERM (a deploy: each must exit 0 within
the grace period) and restarted, the broker is SIGKILLed and restarted,
and the database is SIGKILLed and restarted (``--db-outage S`` also stops
it for S seconds, e.g. 180). A consumer that dies by itself is restarted
at once, as an orchestrator would. At the end it counts:

- lost: committed, not poison, and no effect;
- duplicated: more than one effect for one message;
- ghosts: an effect for a message whose transaction rolled back;
- stuck: outbox rows not sent, dead letters of good messages, poison and
  crash-looping messages without a dead letter or without exactly one
  ``on_exhausted``, crash-looping ones not given up as ``crashed``;

and prints how long each kind of crash took to recover from (until the
next effect). The harness's PostgreSQL runs with ``fsync``,
``full_page_writes`` and ``synchronous_commit`` off (a kill may lose the last
commits); the soak turns all three on (production durability) and says so;
Artemis keeps its journal synced (``journal-datasync``, the default);
RabbitMQ's quorum queues fsync before they confirm (there is no switch).
SQLite has no server to crash: with it there are no database crashes, and
a writer's crash is what the relay and consumer kills are (each may die
inside a write transaction). A script, not a test: figures are printed as
measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--relay-kills", type=int, default=20)
    parser.add_argument("--consumer-kills", type=int, default=20)
    parser.add_argument("--broker-crashes", type=int, default=3)
    parser.add_argument("--db-crashes", type=int, default=1)
    parser.add_argument("--db-outage", type=float, default=0.0, help="seconds; 0: none")
    parser.add_argument("--relay-terms", type=int, default=5, help="SIGTERMs (deploys)")
    parser.add_argument("--consumer-terms", type=int, default=5, help="SIGTERMs (deploys)")
    parser.add_argument("--crash-loops", type=int, default=3, help="messages that kill")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between crashes")
    parser.add_argument("--settle", type=float, default=300.0, help="seconds to wait at the end")
    parser.add_argument(
        "--provider", choices=["artemis", "rabbitmq", "database"], default="artemis"
    )
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep the processes' logs here")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)

    from tests.harness.postgres import PostgresServer

    with contextlib.ExitStack() as stack:
        if args.database == "sqlite":
            postgres = None
            if args.db_crashes or args.db_outage:
                print("SQLite has no server to crash: no database crashes or outage", flush=True)
                args.db_crashes, args.db_outage = 0, 0.0
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            # project.settings gives an SQLite DATABASE_URL the embedded default's options
            # (WAL, IMMEDIATE transactions, a 20 s busy timeout).
            os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'soak.sqlite3'}"
            where = "SQLite (WAL file)"
        else:
            postgres = stack.enter_context(PostgresServer())
            use_postgres(postgres)
            where = f"PostgreSQL ({postgres.mode})"
        broker = stack.enter_context(start_broker(args.provider))
        # Through the outbox: its rows are the record of what committed (committed()).
        os.environ["KEW_SOAK_PROVIDER"] = broker.url if broker else "database://?direct=false"
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.soak_settings"
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE soak_effect (n integer NOT NULL, at timestamp)")
            cursor.execute("CREATE TABLE soak_failed (n integer PRIMARY KEY)")
            cursor.execute("CREATE TABLE soak_exhausted (n integer NOT NULL)")
        where += f" + {describe(broker)}" if broker else ", database provider"
        print(f"soak on {where}, seed {seed}", flush=True)
        logs = args.logs or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        logs.mkdir(parents=True, exist_ok=True)
        Soak(args, postgres, broker, logs).run()


@contextlib.contextmanager
def start_broker(provider: str):
    """Yield the harness's broker for ``provider`` (None for the database provider)."""
    if provider == "artemis":
        from tests.harness.artemis import ArtemisServer

        with ArtemisServer() as server:
            yield server
    elif provider == "rabbitmq":
        from tests.harness.rabbitmq import RabbitServer

        with RabbitServer() as server:
            yield server
    else:
        yield None


def describe(broker) -> str:
    """Name the broker and where it runs."""
    if hasattr(broker, "version"):
        return f"Artemis {broker.version} ({broker.mode})"
    return f"RabbitMQ ({broker.mode}, quorum queues)"


def use_postgres(postgres) -> None:
    """Create the soak's database on the harness's PostgreSQL and point DATABASE_URL at it."""
    dbname = f"kew_soak_{uuid.uuid4().hex[:8]}"
    postgres.create_database(dbname)
    # The harness runs PostgreSQL with fsync, full_page_writes and synchronous_commit off,
    # so a kill() may lose the last ~0.6 s of commits (its docs say so); a soak of crash
    # safety runs at production durability: all three on.
    from bench.durability import durable

    durable(postgres.url_for(dbname), dbname)
    os.environ["DATABASE_URL"] = postgres.url_for(dbname)


class Soak:
    def __init__(self, args, postgres, broker, logs: Path):
        self.args, self.postgres, self.broker, self.logs = args, postgres, broker, logs
        self.relay: subprocess.Popen | None = None
        self.consumers: list[subprocess.Popen | None] = [None, None]
        self.rolled_back: set[int] = set()
        self.recoveries: dict[str, list[float]] = {}
        self.sending_done = threading.Event()
        self.sent_after = self.chaos_took = 0.0
        self.killers = set(random.sample(range(args.count), min(args.crash_loops, args.count)))
        self.term_exits: list[tuple[str, int | None, float]] = []
        self.self_deaths = 0
        self.events = self.schedule()
        # The sender is paced to last as long as the crashes (a broker restart takes ~6 s),
        # so that every crash hits a system at work, not one that has finished.
        self.span = (
            len(self.events) * args.interval + 6.0 * self.events.count("broker") + args.db_outage
        )
        self.lock = threading.Lock()

    def spawn(self, *command: str) -> subprocess.Popen:
        log = open(self.logs / f"{command[0]}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def run(self) -> None:
        self.relay = self.spawn("kew_relay")
        self.consumers = [self.spawn("kew_consume"), self.spawn("kew_consume")]
        sender = threading.Thread(target=self.send_all)
        started = time.monotonic()
        sender.start()
        supervising = threading.Event()
        supervisor = threading.Thread(target=self.supervise, args=(supervising,), daemon=True)
        supervisor.start()
        try:
            self.chaos()
            sender.join()
            settled = self.settle()
            supervising.set()
            supervisor.join()
            print(
                f"sending took {self.sent_after:.0f}s, the crashes "
                f"{self.chaos_took:.0f}s; "
                + (
                    f"all done after {time.monotonic() - started:.0f}s"
                    if settled
                    else f"NOT all done after {time.monotonic() - started:.0f}s"
                )
            )
        finally:
            for process in [self.relay, *self.consumers]:
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in [self.relay, *self.consumers]:
                if process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(30)
        self.report()

    # -- the sender --

    def send_all(self) -> None:
        from django.db import InterfaceError, OperationalError, connection, transaction

        from bench.soak_app.consumers import Item, items

        started = time.monotonic()
        n = 0
        while n < self.args.count:
            batch = list(range(n, min(n + 10, self.args.count)))
            roll_back = random.random() < 0.05
            try:
                with transaction.atomic():
                    for i in batch:
                        items.send(
                            Item(
                                i,
                                poison=random.random() < 0.01,
                                fail_once=random.random() < 0.02,
                                kill=i in self.killers,
                            )
                        )
                    if roll_back:
                        raise _RollBack
            except _RollBack:
                self.rolled_back.update(batch)
            except (OperationalError, InterfaceError):
                connection.close()
                time.sleep(0.5)
                continue  # committed or not: the outbox says, at the end
            n += len(batch)
            due = started + self.span * n / self.args.count
            time.sleep(max(0.002, due - time.monotonic()))
        self.sent_after = time.monotonic() - started
        self.sending_done.set()

    # -- the chaos --

    def schedule(self) -> list[str]:
        """Return the crashes to cause, in a random order."""
        events = (
            ["relay"] * self.args.relay_kills
            + ["consumer"] * self.args.consumer_kills
            + ["relay_term"] * self.args.relay_terms
            + ["consumer_term"] * self.args.consumer_terms
            + (["broker"] * self.args.broker_crashes if self.broker else [])
            + ["database"] * self.args.db_crashes
        )
        random.shuffle(events)
        if self.args.db_outage:
            events.insert(len(events) // 2, "outage")
        return events

    def chaos(self) -> None:
        started = time.monotonic()
        for event in self.events:
            time.sleep(random.uniform(0.5, 1.5) * self.args.interval)
            before = self.effects()
            began = time.monotonic()
            getattr(self, f"crash_{event}")()
            self.watch_recovery(event, before, began)
        self.chaos_took = time.monotonic() - started

    def crash_relay(self) -> None:
        self.relay = self.kill_and_restart(self.relay, "kew_relay")

    def crash_consumer(self) -> None:
        with self.lock:
            index = random.randrange(len(self.consumers))
            process = self.consumers[index]
            self.consumers[index] = None  # not the supervisor's to restart
        restarted = self.kill_and_restart(process, "kew_consume")
        with self.lock:
            self.consumers[index] = restarted

    def crash_relay_term(self) -> None:
        self.relay = self.term_and_restart(self.relay, "kew_relay")

    def crash_consumer_term(self) -> None:
        with self.lock:
            index = random.randrange(len(self.consumers))
            process = self.consumers[index]
            self.consumers[index] = None  # not the supervisor's to restart
        restarted = self.term_and_restart(process, "kew_consume")
        with self.lock:
            self.consumers[index] = restarted

    def term_and_restart(self, process, command: str) -> subprocess.Popen:
        """Stop ``process`` as a deploy does (SIGTERM), note its exit code and time, restart it."""
        if process is not None and process.poll() is None:
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                code: int | None = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = None  # did not stop within the grace period
            with self.lock:
                self.term_exits.append((command, code, time.monotonic() - began))
        return self.spawn(command)

    def supervise(self, done: threading.Event) -> None:
        """Restart a consumer that died by itself (a crash-looping message), as systemd would."""
        while not done.wait(0.2):
            with self.lock:
                for index, process in enumerate(self.consumers):
                    if process is not None and process.poll() == -signal.SIGKILL:
                        self.self_deaths += 1
                        self.consumers[index] = self.spawn("kew_consume")

    def kill_and_restart(self, process, command: str) -> subprocess.Popen:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        return self.spawn(command)

    def crash_broker(self) -> None:
        self.broker.kill()
        self.broker.start()

    def crash_database(self) -> None:
        self.postgres.kill()
        time.sleep(1.0)
        self.postgres.start()

    def crash_outage(self) -> None:
        self.postgres.stop()
        time.sleep(self.args.db_outage)
        self.postgres.start()

    def watch_recovery(self, event: str, before: int | None, began: float) -> None:
        """Record the time from the crash until the next effect (in the background)."""

        def watch() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                now = self.effects()
                if now is not None and before is not None and now > before:
                    with self.lock:
                        self.recoveries.setdefault(event, []).append(time.monotonic() - began)
                    return
                if self.sending_done.is_set() and now is not None and now >= self.expected():
                    return  # nothing left to do: no recovery to time
                time.sleep(0.1)

        threading.Thread(target=watch, daemon=True).start()

    # -- counting --

    def query(self, sql: str, params=()) -> list[tuple] | None:
        from django.db import DatabaseError, connections

        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        except DatabaseError:
            connections["default"].close()
            return None

    def effects(self) -> int | None:
        rows = self.query("SELECT count(*) FROM soak_effect")
        return rows[0][0] if rows else None

    def committed(self) -> dict[int, bool]:
        """Return each committed item's number: whether it never has an effect (poison, kill)."""
        rows = self.query("SELECT payload FROM kew_django_outboxmessage") or []
        items = [json.loads(bytes(payload)) for (payload,) in rows]
        return {item["n"]: item["poison"] or item.get("kill", False) for item in items}

    def expected(self) -> int:
        return sum(not poison for poison in self.committed().values())

    def settle(self) -> bool:
        deadline = time.monotonic() + self.args.settle
        while time.monotonic() < deadline:
            rows = self.query("SELECT count(DISTINCT n) FROM soak_effect")
            pending = self.query(
                "SELECT count(*) FROM kew_django_outboxmessage WHERE status = 'pending'"
            )
            letters = self.query("SELECT count(*) FROM kew_django_deadletter")
            given_up = sum(self.committed().values())  # poison and crash-looping items
            effects_done = rows and pending and rows[0][0] >= self.expected()
            if effects_done and pending[0][0] == 0 and letters and letters[0][0] >= given_up:
                time.sleep(3.0)  # let duplicates, if any, arrive
                return True
            time.sleep(1.0)
        return False

    def report(self) -> None:
        committed = self.committed()
        good = {n for n, poison in committed.items() if not poison}
        poison = {n for n, p in committed.items() if p}
        counts: dict[int, int] = {}
        for (n,) in self.query("SELECT n FROM soak_effect") or []:
            counts[n] = counts.get(n, 0) + 1
        letters = self.query("SELECT payload, reason FROM kew_django_deadletter") or []
        lettered = {json.loads(bytes(p))["n"]: reason for p, reason in letters}
        exhausted: dict[int, int] = {}
        for (n,) in self.query("SELECT n FROM soak_exhausted") or []:
            exhausted[n] = exhausted.get(n, 0) + 1
        killers = poison & self.killers
        not_crashed = sorted(n for n in killers if lettered.get(n) != "crashed")
        outcomes_off = sorted(n for n in poison if exhausted.get(n) != 1)
        unsent = self.query(
            "SELECT status, count(*) FROM kew_django_outboxmessage "
            "WHERE status <> 'sent' GROUP BY status"
        )
        lost = sorted(good - set(counts))
        duplicated = sorted(n for n, c in counts.items() if c > 1)
        ghosts = sorted(set(counts) - set(committed))
        stuck_letters = sorted(n for n in lettered if n in good)
        stuck = (
            sum(c for _, c in unsent or [])
            + len(stuck_letters)
            + len(poison - set(lettered))
            + len(not_crashed)
            + len(outcomes_off)
        )
        print(
            f"messages: {self.args.count} sent, {len(committed)} committed "
            f"({len(poison)} poison), {len(self.rolled_back)} rolled back"
        )
        print(
            f"crashes: {self.args.relay_kills} relay kills, {self.args.consumer_kills} consumer "
            f"kills, {self.args.broker_crashes if self.broker else 0} broker crashes, "
            f"{self.args.db_crashes} database crashes"
            + (f", one {self.args.db_outage:.0f}s database outage" if self.args.db_outage else "")
        )
        clean = [t for _, code, t in self.term_exits if code == 0]
        print(
            f"deploys (SIGTERM): {len(self.term_exits)}, {len(clean)} exited 0"
            + (f" (longest {max(clean):.1f}s)" if clean else "")
            + f"; crash-looping messages: {len(killers)} committed, consumers that died on "
            f"them: {self.self_deaths}, given up as crashed: {len(killers) - len(not_crashed)}"
        )
        print(
            f"lost {len(lost)}, duplicated {len(duplicated)}, ghosts {len(ghosts)}, stuck {stuck}"
        )
        for name, values in (
            ("lost", lost),
            ("duplicated", duplicated),
            ("ghosts", ghosts),
            ("stuck dead letters", stuck_letters),
            ("crash-looping, not given up as crashed", not_crashed),
            ("given up without exactly one on_exhausted", outcomes_off),
            ("SIGTERM exits other than 0", [c for c in self.term_exits if c[1] != 0]),
        ):
            if values:
                print(f"  {name}: {values[:20]}")
        if unsent:
            print(f"  outbox rows not sent: {dict(unsent)}")
        if lost:
            failed_once = {n for (n,) in self.query("SELECT n FROM soak_failed") or []}
            retried = [n for n in lost if n in failed_once]
            print(f"  of the lost, {len(retried)} had answered RETRY once: {retried[:20]}")
        for event, times in sorted(self.recoveries.items()):
            print(
                f"recovery after {event}: median {statistics.median(times):.1f}s, "
                f"max {max(times):.1f}s ({len(times)} timed)"
            )


class _RollBack(Exception):
    """Raised to roll a sender's transaction back on purpose."""


if __name__ == "__main__":
    main()
