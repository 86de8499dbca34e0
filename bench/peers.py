"""Kew against dramatiq and Celery, end to end, at production durability, side by side in one run.

Usage::

    .venv/bin/python bench/peers.py [--count 5000] [--senders 4] [--rounds 2]
        [--latency 500] [--workloads web plain] [--systems ...] [--no-kill] [--profile]

It starts, with ``tests.harness`` and on loopback, PostgreSQL (turned to
production durability: ``fsync``, ``full_page_writes`` and
``synchronous_commit`` on, checked and printed), Artemis with its journal
synced, and one RabbitMQ node of its own (Debian's ``rabbitmq-server``; it
fsyncs before it confirms). Dramatiq and Celery come from the project's
``.venv`` (the ``dev`` extra). The systems:

- ``kew-artemis``, ``kew-rabbitmq``: ``Channel.send`` in the sender's
  transaction, the relay publishes the committed outbox row with confirms,
  ``kew_consume`` (prefetch 100) handles it in a transaction, then acks;
- ``kew-artemis-oncommit``, ``kew-rabbitmq-oncommit``: the same with
  ``KEW["OUTBOX"]["PUBLISH_ON_COMMIT"]``: the sending process publishes the
  row after its commit, the relay runs as the safety net;
- ``kew-database``: the same on the database provider (queues in PostgreSQL);
- ``kew-direct``: the database provider with ``direct=true``: ``send`` writes
  the queue row in the sender's transaction, no outbox row, no relay hop;
- ``dramatiq``: ``transaction.on_commit(actor.send)``, publisher confirms,
  ``--threads 1``, prefetch 100, on the same RabbitMQ node;
- ``celery``: ``transaction.on_commit(task.delay)``, confirms,
  ``acks_late``, prefork, prefetch multiplier 100, on the same node.

Workloads (``bench/peers/produce.py``): ``web``, SENDERS threads, each
transaction a business row (an ``Order``) and its message; ``plain``, one
message per transaction and nothing else. Every handler does one ORM
insert. For each workload and 1 and 2 consumer processes it prints end to
end msg/s (COUNT / (last handler start - first send)) and CPU seconds per
1,000 messages by process (sender, relay, consumers, broker, PostgreSQL);
then latency, commit -> handler start, LATENCY messages 10 ms apart, 1
consumer process; then a sender SIGKILLed mid-run per system: business
rows committed without their message ever handled. Rounds are
interleaved (the first system changes each round), and ratios are taken
pair by pair within a round. A script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers.meters import GroupCpu, NoCpu, PostgresCpu, summarize_profiles  # noqa: E402
from tests.harness.processes import group_cpu_seconds  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
NAMES = {
    "kew-artemis": "Kew, outbox -> relay -> Artemis",
    "kew-artemis-oncommit": "Kew, published on commit -> Artemis",
    "kew-rabbitmq": "Kew, outbox -> relay -> RabbitMQ (quorum)",
    "kew-rabbitmq-oncommit": "Kew, published on commit -> RabbitMQ",
    "kew-database": "Kew, database provider (PostgreSQL)",
    "kew-direct": "Kew, database provider, direct sends",
    "dramatiq": "dramatiq + RabbitMQ, confirms, on_commit",
    "celery": "Celery + RabbitMQ, confirms, acks_late",
}
SYSTEMS = tuple(NAMES)
# Issue targets, as ratios to dramatiq on the web workload, and latency bounds (ms).
THROUGHPUT_TARGETS = {
    "kew-artemis": 1.2,
    "kew-artemis-oncommit": 1.2,
    "kew-rabbitmq": 1.0,
    "kew-rabbitmq-oncommit": 1.0,
    "kew-database": 1.5,
    "kew-direct": 1.5,
}
LATENCY_TARGETS = {
    "kew-database": (1.5, 5.0),
    "kew-direct": (1.5, 5.0),
    "kew-artemis": (2.5, 5.0),
    "kew-artemis-oncommit": (2.5, 5.0),
}


def kind(system: str) -> str:
    return "kew" if system.startswith("kew") else system


class Bench:
    def __init__(self, args, env: dict[str, str], urls: dict[str, str], meters: dict, db):
        self.args, self.env, self.urls, self.meters, self.db = args, env, urls, meters, db
        self.logs = Path(tempfile.mkdtemp(prefix="kew-bench-peers-"))

    def env_for(self, system: str) -> dict[str, str]:
        oncommit = "1" if system.endswith("-oncommit") else ""  # bench/peers/settings.py
        return {
            **self.env,
            "PEERS_SYSTEM": system,
            "KEW_BROKER_URL": self.urls[system],
            "PEERS_ONCOMMIT": oncommit,
        }

    def consumers(self, system: str, processes: int, tag: str) -> list[subprocess.Popen[bytes]]:
        """Start the consumer side of ``system`` (Kew: the relay first); return the processes."""
        manage = [PYTHON, str(ROOT / "manage.py")]
        bin_dir = ROOT / ".venv" / "bin"
        if kind(system) == "kew":
            commands = [[*manage, "kew_relay"]] + [
                [*manage, "kew_consume", "bench.peers.kew", "--concurrency", "1"]
                for _ in range(processes)
            ]
        elif system == "dramatiq":
            commands = [
                [str(bin_dir / "dramatiq"), "bench.peers.dramatiq_actors"]
                + ["--processes", str(processes), "--threads", "1"]
            ]
        else:
            commands = [
                [str(bin_dir / "celery"), "-A", "bench.peers.celery_app", "worker"]
                + ["--pool", "prefork", "--concurrency", str(processes), "-Q"]
                + ["bench_peers_celery", "--without-gossip", "--without-mingle"]
                + ["--without-heartbeat", "--loglevel", "WARNING"]
            ]
        procs = []
        for i, command in enumerate(commands):
            role = "relay" if kind(system) == "kew" and i == 0 else f"consumer{i}"
            command = self.profiled(f"{system}-{tag}-{processes}p-{role}", command)
            log = open(self.logs / f"{system}-{processes}-{i}.log", "ab")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env_for(system),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        time.sleep(6)  # every process imported Django and subscribed
        for proc in procs:
            if proc.poll() is not None:
                sys.exit(f"{system} consumer exited early; see {self.logs}")
        return procs

    def cpu_parts(self, system: str, procs: list[subprocess.Popen[bytes]]) -> dict[str, float]:
        """CPU seconds so far of each kind of process of ``system`` (children included)."""
        relay, consumers = (procs[:1], procs[1:]) if kind(system) == "kew" else ([], procs)
        return {
            "relay": sum(group_cpu_seconds(p.pid) for p in relay),
            "consumers": sum(group_cpu_seconds(p.pid) for p in consumers),
            "broker": self.meters[system].cpu(),
            "database": self.meters["postgres"].cpu(),
        }

    def profiled(self, name: str, command: list[str]) -> list[str]:
        """Return ``command``, under py-spy when profiling (collapsed stacks in the log folder)."""
        if not self.args.profile:
            return command
        out = self.logs / f"profile-{name}-{uuid.uuid4().hex[:6]}.txt"
        spy = [self.args.profile, "record", "--format", "raw", "--rate", "250"]
        return [*spy, "--nonblocking", "--subprocesses", "-o", str(out), "--", *command]

    def sender(self, system: str, workload: str, count: int, senders: int, interval: float):
        out = self.logs / f"sent-{uuid.uuid4().hex}.json"
        command = [PYTHON, "-m", "bench.peers.produce", kind(system), workload]
        command += [str(count), str(senders), str(interval), str(out)]
        tag = "latency" if interval else workload
        command = self.profiled(f"{system}-{tag}-sender", command)
        proc = subprocess.Popen(command, cwd=ROOT, env=self.env_for(system))
        return proc, out

    def effects(self, system: str) -> int:
        return self.db.query(
            "select count(*) from peers_effect where system = %s and n >= 0", system
        )[0][0]

    def stop(self, procs: list[subprocess.Popen[bytes]]) -> None:
        stop = signal.SIGINT if self.args.profile else signal.SIGTERM  # py-spy writes on SIGINT
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, stop)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def run(self, system: str, workload: str, processes: int, interval: float = 0.0) -> dict:
        """One run: consumers up, the senders send, wait for every effect; return the figures."""
        self.db.query("delete from peers_effect; delete from peers_order")
        count = self.args.latency if interval else self.args.count
        senders = 1 if interval else self.args.senders
        procs = self.consumers(system, processes, "latency" if interval else workload)
        before = self.cpu_parts(system, procs)
        sender, out = self.sender(system, workload, count, senders, interval)
        if sender.wait() != 0:
            sys.exit(f"{system}: the sender failed; see above")
        sent = json.loads(out.read_text())
        deadline = time.monotonic() + 300
        while self.effects(system) < count:
            if time.monotonic() > deadline:
                sys.exit(f"{system}: not every message was handled in 300 s; see {self.logs}")
            time.sleep(0.05)
        after = self.cpu_parts(system, procs)
        parts = {name: (after[name] - before[name]) / count * 1000 for name in after}
        parts["sender"] = sent["cpu"] / count * 1000
        rows = self.db.query(
            "select n, started from peers_effect where system = %s and n >= 0", system
        )
        self.stop(procs)
        started = dict(rows)
        delays = sorted((started[n] - sent["sent"][n]) * 1000 for n in range(count))
        return {
            "rate": count / (max(started.values()) - sent["began"]),
            "cpu": sum(parts.values()),
            "parts": parts,
            "p50": percentile(delays, 50),
            "p99": percentile(delays, 99),
        }

    def kill_sender(self, system: str) -> tuple[int, int]:
        """SIGKILL a web-workload sender mid-run; return (orders without a message, orders)."""
        self.db.query("delete from peers_effect; delete from peers_order")
        procs = self.consumers(system, 1, "kill")
        sender, _ = self.sender(system, "web", 100_000, self.args.senders, 0.0)
        deadline = time.monotonic() + 60
        while self.orders(system) < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        sender.send_signal(signal.SIGKILL)
        sender.wait()
        seen, still = -1, time.monotonic()
        while time.monotonic() - still < 10:  # settled: no new effect for 10 s
            now = self.effects(system)
            if now != seen:
                seen, still = now, time.monotonic()
            time.sleep(0.2)
        self.stop(procs)
        (orphans,) = self.db.query(
            "select count(*) from peers_order o where o.system = %s and o.n >= 0 and not exists "
            "(select 1 from peers_effect e where e.system = o.system and e.n = o.n)",
            system,
        )[0]
        return orphans, self.orders(system)

    def orders(self, system: str) -> int:
        return self.db.query(
            "select count(*) from peers_order where system = %s and n >= 0", system
        )[0][0]

    def main(self) -> None:
        args = self.args
        systems = tuple(s for s in SYSTEMS if s in args.systems)
        figures: dict[tuple, list[dict]] = {}
        for r in range(args.rounds):
            order = systems[r % len(systems) :] + systems[: r % len(systems)]
            for workload in args.workloads:
                for processes in (1, 2):
                    for system in order:
                        got = self.run(system, workload, processes)
                        figures.setdefault((workload, processes, system), []).append(got)
                        each = ", ".join(f"{k} {v:.2f}" for k, v in got["parts"].items())
                        print(
                            f"  round {r + 1}: {workload:<5} {system:<21} {processes}p "
                            f"{got['rate']:>6,.0f} msg/s  {got['cpu']:.2f} cpu s/1000 ({each})",
                            flush=True,
                        )
            for system in order:
                got = self.run(system, "web", 1, interval=0.01)
                figures.setdefault(("latency", 1, system), []).append(got)
                print(
                    f"  round {r + 1}: latency {system:<21} p50 {got['p50']:.1f} ms "
                    f"p99 {got['p99']:.1f} ms",
                    flush=True,
                )
        kills = {}
        if not args.no_kill:
            for system in systems:
                kills[system] = self.kill_sender(system)
                print(f"  sender kill: {system:<21} {kills[system][0]} of {kills[system][1]:,}")
        report(args, systems, figures, kills)
        print(f"  process logs in {self.logs}")
        if args.profile:
            summarize_profiles(self.logs)


def report(args, systems, figures, kills) -> None:
    """Print the tables and the ratios (pair by pair within a round, then the median)."""
    med = statistics.median
    print(
        f"\n{args.count:,} messages per run, {args.senders} sender threads, medians of "
        f"{args.rounds} interleaved rounds; latency: {args.latency} messages 10 ms apart, "
        "commit -> handler start, 1 consumer process\n"
    )
    for workload in args.workloads:
        print(f"workload {workload!r}:")
        print(f"| {'':<42} | 1 process | 2 processes | cpu s/1000 (1 / 2) |")
        print(f"|{'-' * 44}|-----------|-------------|--------------------|")
        for s in systems:
            one, two = figures[workload, 1, s], figures[workload, 2, s]
            print(
                f"| {NAMES[s]:<42} | {med(f['rate'] for f in one):>5,.0f}/s  "
                f"| {med(f['rate'] for f in two):>7,.0f}/s  "
                f"| {med(f['cpu'] for f in one):>7.2f} / {med(f['cpu'] for f in two):<8.2f} |"
            )
        if "dramatiq" in systems:
            for s in [s for s in systems if kind(s) == "kew"]:
                for p in (1, 2):
                    pairs = zip(
                        figures[workload, p, s], figures[workload, p, "dramatiq"], strict=True
                    )
                    rate = sorted(a["rate"] / b["rate"] for a, b in pairs)
                    pairs = zip(
                        figures[workload, p, s], figures[workload, p, "dramatiq"], strict=True
                    )
                    cpu = med(a["cpu"] / b["cpu"] for a, b in pairs)
                    target = THROUGHPUT_TARGETS.get(s) if workload == "web" else None
                    verdict = ""
                    if target:
                        met = med(rate) >= target and cpu <= 1.0
                        verdict = (
                            f"  target >= {target}x at <= 1.0x cpu: {'met' if met else 'MISSED'}"
                        )
                    print(
                        f"  {s} / dramatiq, {p}p: {med(rate):.2f}x throughput "
                        f"(rounds {rate[0]:.2f}-{rate[-1]:.2f}), {cpu:.2f}x cpu/msg{verdict}"
                    )
        print()
    print("latency, commit -> handler start (ms):")
    for s in systems:
        got = figures["latency", 1, s]
        p50, p99 = med(f["p50"] for f in got), med(f["p99"] for f in got)
        bound = LATENCY_TARGETS.get(s)
        verdict = ""
        if bound:
            met = p50 <= bound[0] and p99 <= bound[1]
            verdict = f"  target p50 <= {bound[0]}, p99 <= {bound[1]}: {'met' if met else 'MISSED'}"
        print(f"  {NAMES[s]:<42} p50 {p50:5.1f}  p99 {p99:5.1f}{verdict}")
    if kills:
        print("\nsender SIGKILLed mid-run (web workload): business rows without their message")
        for s, (orphans, orders) in kills.items():
            print(f"  {NAMES[s]:<42} {orphans} of {orders:,}")


class Database:
    def __init__(self, server, name: str):
        self.conn = server.connect(name)
        self.conn.autocommit = True

    def query(self, sql: str, *params):
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def percentile(ordered: list[float], p: float) -> float:
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="messages per throughput run")
    parser.add_argument("--senders", type=int, default=4, help="sender threads")
    parser.add_argument("--latency", type=int, default=500, help="messages for the latency run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--workloads", nargs="+", default=["web", "plain"], choices=["web", "plain"]
    )
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--no-kill", action="store_true", help="skip the sender-kill runs")
    parser.add_argument("--profile", action="store_true", help="py-spy every Python process")
    args = parser.parse_args()
    if args.profile:
        args.profile = shutil.which("py-spy")
        if not args.profile:
            sys.exit("--profile needs py-spy on PATH (pip install py-spy)")

    from bench.durability import durable
    from tests.harness.artemis import ArtemisServer
    from tests.harness.postgres import PostgresServer
    from tests.harness.rabbitmq import RabbitServer

    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        artemis = stack.enter_context(ArtemisServer(fsync=True))
        rabbit = stack.enter_context(RabbitServer())
        dbname = f"kew_peers_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        durable(postgres.url_for(dbname), dbname)
        amqp = f"amqp://{rabbit.user}:{rabbit.password}@{rabbit.host}:{rabbit.port}/%2F"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KEW_TEST"))}
        env.update(
            DJANGO_SETTINGS_MODULE="bench.peers.settings",
            DATABASE_URL=postgres.url_for(dbname),
            KEW_LOG_LEVEL="WARNING",
            PEERS_AMQP_URL=amqp,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            dramatiq_queue_prefetch="100",
        )
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "--run-syncdb", "--verbosity", "0"],
            cwd=ROOT,
            env={**env, "KEW_BROKER_URL": "database://"},
            check=True,
        )
        urls = {
            "kew-artemis": artemis.url,
            "kew-artemis-oncommit": artemis.url,
            "kew-rabbitmq": rabbit.url,
            "kew-rabbitmq-oncommit": rabbit.url,
            "kew-database": "database://?direct=false",
            "kew-direct": "database://?direct=true",
            "dramatiq": "database://",
            "celery": "database://",
        }
        rabbit_cpu = GroupCpu(rabbit.node._proc)
        meters = {
            "postgres": PostgresCpu(postgres),
            "kew-artemis": GroupCpu(artemis._proc),
            "kew-artemis-oncommit": GroupCpu(artemis._proc),
            "kew-rabbitmq": rabbit_cpu,
            "kew-rabbitmq-oncommit": rabbit_cpu,
            "kew-database": NoCpu(),
            "kew-direct": NoCpu(),
            "dramatiq": rabbit_cpu,
            "celery": rabbit_cpu,
        }
        version = importlib.metadata.version
        print(
            f"PostgreSQL ({postgres.mode}), Artemis {artemis.version} ({artemis.mode}, journal "
            f"synced), RabbitMQ {rabbitmq_version()} ({rabbit.mode}, fsync before confirm), "
            f"dramatiq {version('dramatiq')}, Celery {version('celery')}; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
            flush=True,
        )
        began = time.monotonic()
        Bench(args, env, urls, meters, Database(postgres, dbname)).main()
        print(f"  {time.monotonic() - began:.0f} s; load {os.getloadavg()[0]:.1f} at the end")


def rabbitmq_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
