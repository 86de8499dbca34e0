"""Kew against dramatiq and Celery, end to end, measured side by side in one run.

Usage::

    .venv/bin/python bench/peers.py [--count 10000] [--latency 500] [--rounds 3]

It installs dramatiq and Celery into a virtualenv of its own
(``var/bench-peers/venv``, with this project installed too, so every
handler runs the same Django code), starts RabbitMQ from Debian's
``rabbitmq-server`` on a free loopback port, PostgreSQL and Artemis with
``tests.harness`` (loopback), and runs one workload for the three systems:

- a sender process sends COUNT messages of about 100 bytes, one send each
  (Kew: ``Channel.send`` in its own transaction, then the relay
  publishes the committed outbox row; dramatiq: ``actor.send`` with
  publisher confirms; Celery: ``task.delay`` with publisher confirms);
- 1 or 2 consumer processes run a handler that does one ORM insert into
  the same table (Kew ``kew_consume``, prefetch 100; dramatiq
  ``--threads 1``, prefetch 100; Celery prefork ``--concurrency N``,
  prefetch multiplier 100, ``acks_late``);
- end to end is COUNT / (last handler start - first send);
- latency: LATENCY messages 10 ms apart, hand-off -> handler start, 1
  consumer process; the hand-off is the return of Kew's commit (the
  message exists from then on) and the call of dramatiq's and Celery's
  send (their handler may start before the publisher confirm is back);
- CPU seconds per 1,000 messages, summed over the sender, the relay, the
  consumers (and their children), the broker and PostgreSQL.

Durability, stated: every message is persistent on a durable queue and
confirmed by its broker before the send returns (Kew: before the relay
marks the row sent). Artemis syncs its journal (fsync on); RabbitMQ
fsyncs before it confirms (it has no switch to turn that off); the one
PostgreSQL server that all three write to runs with ``fsync=off`` (the
harness's setting), for all three alike. Rounds are interleaved, so the
ratios compare systems on the same machine at the same time. A script,
not a test, and not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.processes import children, cpu_seconds, group_cpu_seconds  # noqa: E402

VENV = ROOT / "var" / "bench-peers" / "venv"
PEER_PACKAGES = ["dramatiq[rabbitmq]>=1.17", "celery>=5.4", "py-spy>=0.3"]
# Debian's server script, run as this user (the /usr/sbin wrapper switches to user rabbitmq).
RABBIT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
SYSTEMS = ("kew", "dramatiq", "celery")
NAMES = {
    "kew": "Kew (outbox -> relay -> Artemis, prefetch 100)",
    "dramatiq": "dramatiq + RabbitMQ, confirm_delivery",
    "celery": "Celery + RabbitMQ, acks_late, confirms",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prerequisites() -> None:
    """Say clearly what is missing, before anything starts."""
    if not Path(RABBIT).exists():
        sys.exit("bench/peers.py needs RabbitMQ: apt-get install rabbitmq-server (Debian)")
    if not shutil.which("epmd"):
        sys.exit("bench/peers.py needs epmd (Erlang): apt-get install rabbitmq-server (Debian)")
    if not (ROOT / ".venv" / "bin" / "python").exists():
        sys.exit("bench/peers.py runs from the project's .venv: make install first")


def peer_venv() -> Path:
    """Create the peers' virtualenv once: dramatiq, Celery and this project; return its bin."""
    marker = VENV / ".installed"
    if not marker.exists():
        print(f"installing dramatiq and Celery into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, *PEER_PACKAGES], check=True)
        subprocess.run(
            [*pip, "-e", f"{ROOT}[artemis,django,postgres,tasks]", "django-environ"], check=True
        )
        marker.touch()
    return VENV / "bin"


def version(bin_dir: Path, package: str) -> str:
    out = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            f"import importlib.metadata as m; print(m.version({package!r}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class RabbitMQ:
    """A RabbitMQ node of our own on a free loopback port (not Debian's system service)."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.node = f"kewbench{os.getpid()}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        for folder in ("home", "mnesia", "log"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )
        (base / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(base / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "mnesia" / "feature_flags"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(free_port()),  # an epmd of our own, stopped with the node
        }
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def __enter__(self) -> RabbitMQ:
        log = open(self.base / "server.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.epmd = subprocess.Popen(
            ["epmd", "-address", "127.0.0.1", "-port", self.env["ERL_EPMD_PORT"]],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.proc = subprocess.Popen(
            [RABBIT], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        ctl = [str(Path(RABBIT).with_name("rabbitmqctl")), "-n", self.node]
        deadline = time.monotonic() + 120
        while True:  # await_startup fails at once until the node has registered with epmd
            waited = subprocess.run(
                [*ctl, "await_startup", "--timeout", "120"], env=self.env, capture_output=True
            )
            if waited.returncode == 0 or time.monotonic() > deadline or self.proc.poll():
                break
            time.sleep(1)
        if waited.returncode != 0:
            self.__exit__()
            why = (waited.stdout + waited.stderr).decode(errors="replace").strip()
            sys.exit(f"RabbitMQ did not start ({why}); see {self.base / 'server.log'}")
        return self

    def cpu(self) -> float:
        return group_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None
        if self.epmd is not None:
            self.epmd.terminate()
            self.epmd.wait(10)
            self.epmd = None


class Bench:
    def __init__(self, args, peers: Path, env: dict[str, str], servers: dict, db):
        self.args, self.peers, self.env, self.servers, self.db = args, peers, env, servers, db
        self.kew_python = str(ROOT / ".venv" / "bin" / "python")
        self.logs = Path(tempfile.mkdtemp(prefix="kew-bench-peers-"))

    def consumers(self, system: str, processes: int, kind: str) -> list[subprocess.Popen[bytes]]:
        manage = [self.kew_python, str(ROOT / "manage.py")]
        if system == "kew":
            commands = [[*manage, "kew_relay"]] + [
                [*manage, "kew_consume", "bench.peers.kew", "--concurrency", "1"]
                for _ in range(processes)
            ]
        elif system == "dramatiq":
            commands = [
                [str(self.peers / "dramatiq"), "bench.peers.dramatiq_actors"]
                + ["--processes", str(processes), "--threads", "1"]
            ]
        else:
            commands = [
                [str(self.peers / "celery"), "-A", "bench.peers.celery_app", "worker"]
                + ["--pool", "prefork", "--concurrency", str(processes), "-Q"]
                + ["bench_peers_celery", "--without-gossip", "--without-mingle"]
                + ["--without-heartbeat", "--loglevel", "WARNING"]
            ]
        procs = []
        for i, command in enumerate(commands):
            role = "relay" if system == "kew" and i == 0 else f"consumer{i}"
            command = self.profiled(f"{system}-{kind}-{processes}p-{role}", command)
            log = open(self.logs / f"{system}-{processes}-{i}.log", "ab")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return procs

    def cpu_parts(self, system: str, procs: list[subprocess.Popen[bytes]]) -> dict[str, float]:
        """CPU seconds so far of each kind of process of ``system`` (children included)."""
        broker = self.servers["artemis" if system == "kew" else "rabbit"]
        relay, consumers = (procs[:1], procs[1:]) if system == "kew" else ([], procs)
        return {
            "relay": sum(group_cpu_seconds(p.pid) for p in relay),
            "consumers": sum(group_cpu_seconds(p.pid) for p in consumers),
            "broker": broker.cpu(),
            "database": self.servers["postgres"].cpu(),
        }

    def profiled(self, name: str, command: list[str]) -> list[str]:
        """Return ``command``, under py-spy when profiling (collapsed stacks in the log folder)."""
        if not self.args.profile:
            return command
        out = self.logs / f"profile-{name}-{uuid.uuid4().hex[:6]}.txt"
        spy = [str(self.peers / "py-spy"), "record", "--format", "raw", "--rate", "250"]
        return [*spy, "--nonblocking", "--subprocesses", "-o", str(out), "--", *command]

    def run(self, system: str, processes: int, count: int, interval: float) -> dict:
        """One run: consumers up, the sender sends, wait for every effect; return the figures."""
        self.db.query("delete from peers_effect")
        kind = "latency" if interval else "throughput"
        procs = self.consumers(system, processes, kind)
        time.sleep(6)  # every process imported Django and subscribed
        for proc in procs:
            if proc.poll() is not None:
                sys.exit(f"{system} consumer exited early; see {self.logs}")
        before = self.cpu_parts(system, procs)
        out = self.logs / f"sent-{uuid.uuid4().hex}.json"
        python = self.kew_python if system == "kew" else str(self.peers / "python")
        subprocess.run(
            self.profiled(f"{system}-{kind}-sender", [python, "-m", "bench.peers.produce"])
            + [system, str(count), str(interval), str(out)],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        sent = json.loads(out.read_text())
        deadline = time.monotonic() + 300
        while (
            self.db.query("select count(*) from peers_effect where system = %s and n >= 0", system)[
                0
            ][0]
            < count
        ):
            if time.monotonic() > deadline:
                sys.exit(f"{system}: not every message was handled in 300 s; see {self.logs}")
            time.sleep(0.05)
        after = self.cpu_parts(system, procs)
        parts = {name: (after[name] - before[name]) / count * 1000 for name in after}
        parts["sender"] = sent["cpu"] / count * 1000
        cpu = sum(parts.values())
        rows = self.db.query(
            "select n, started from peers_effect where system = %s and n >= 0", system
        )
        stop = signal.SIGINT if self.args.profile else signal.SIGTERM  # py-spy writes on SIGINT
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, stop)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        started = {n: t for n, t in rows}
        last = max(started.values())
        delays = sorted((started[n] - sent["sent"][n]) * 1000 for n in range(count))
        return {
            "rate": count / (last - sent["began"]),
            "cpu": cpu,
            "parts": parts,
            "p50": percentile(delays, 50),
            "p99": percentile(delays, 99),
        }

    def main(self) -> None:
        args = self.args
        rates = {(s, p): [] for s in SYSTEMS for p in (1, 2)}
        cpus = {(s, p): [] for s in SYSTEMS for p in (1, 2)}
        lat = {s: [] for s in SYSTEMS}
        systems = tuple(s for s in SYSTEMS if s in args.systems)
        for r in range(args.rounds):
            order = systems[r % len(systems) :] + systems[: r % len(systems)]  # first changes
            for processes in (1, 2):
                for system in order:
                    figures = self.run(system, processes, args.count, 0.0)
                    rates[system, processes].append(figures["rate"])
                    cpus[system, processes].append(figures["cpu"])
                    each = ", ".join(f"{k} {v:.2f}" for k, v in figures["parts"].items())
                    print(
                        f"  round {r + 1}: {system:<8} {processes} process(es) "
                        f"{figures['rate']:>7,.0f} msg/s  {figures['cpu']:.2f} cpu s/1000 "
                        f"({each})",
                        flush=True,
                    )
            for system in order:
                figures = self.run(system, 1, args.latency, 0.01)
                lat[system].append((figures["p50"], figures["p99"]))
                print(
                    f"  round {r + 1}: {system:<8} latency p50 {figures['p50']:.1f} ms "
                    f"p99 {figures['p99']:.1f} ms",
                    flush=True,
                )
        self.table(systems, rates, cpus, lat)
        if args.profile:
            summarize_profiles(self.logs)

    def table(self, systems, rates, cpus, lat) -> None:
        med = statistics.median
        print(
            f"\n{self.args.count:,} messages per run, medians of {self.args.rounds} interleaved "
            "rounds; latency: "
            f"{self.args.latency} messages 10 ms apart, hand-off -> handler start\n"
        )
        print(
            f"| {'':<48} | 1 process   | 2 processes   | cpu s/1000 msg (1 / 2)  "
            "| latency p50 / p99 |"
        )
        print(
            f"|{'-' * 50}|-------------|---------------|-------------------------"
            "|-------------------|"
        )
        for s in systems:
            p50 = med(a for a, _ in lat[s])
            p99 = med(b for _, b in lat[s])
            print(
                f"| {NAMES[s]:<48} | {med(rates[s, 1]):>5,.0f} msg/s "
                f"| {med(rates[s, 2]):>7,.0f} msg/s "
                f"| {med(cpus[s, 1]):>10.2f} / {med(cpus[s, 2]):<10.2f} "
                f"| {p50:>6.1f} / {p99:<6.1f} ms |"
            )
        print()
        for other in [s for s in ("dramatiq", "celery") if s in systems and "kew" in systems]:
            for p in (1, 2):
                ratios = sorted(
                    k / o for k, o in zip(rates["kew", p], rates[other, p], strict=True)
                )
                print(
                    f"  Kew / {other}, {p} process(es): {med(ratios):.2f}x "
                    f"(per-round {ratios[0]:.2f}-{ratios[-1]:.2f})"
                    + ("  target >= 1.2x: " + ("met" if med(ratios) >= 1.2 else "MISSED"))
                    * (other == "dramatiq")
                )
        if "kew" not in systems:
            return
        p50 = med(a for a, _ in lat["kew"])
        p99 = med(b for _, b in lat["kew"])
        met = "met" if p50 < 1.5 and p99 < 5 else "MISSED"
        print(f"  Kew latency p50 {p50:.1f} ms, p99 {p99:.1f} ms: target < 1.5 / < 5 ms {met}")
        print(f"  process logs in {self.logs}")


class Database:
    def __init__(self, server, name: str):
        self.server, self.name = server, name
        self.conn = server.connect(name)
        self.conn.autocommit = True

    def query(self, sql: str, *params):
        with self.conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


class PostgresCpu:
    def __init__(self, server):
        self.pid = self._postmaster(server)

    @staticmethod
    def _postmaster(server) -> int | None:
        conn = server.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("select pg_backend_pid()")
                backend = cursor.fetchone()[0]
        finally:
            conn.close()
        stat = Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()
        return int(stat[1])  # the postmaster is every backend's parent

    def cpu(self) -> float:
        """CPU of the postmaster, its live children (backends, workers) and its reaped ones.

        Each backend calls setsid() when it starts, so the postmaster's process
        group holds none of them: they are found by their parent.
        """
        if self.pid is None:
            return 0.0
        return cpu_seconds(self.pid) + sum(cpu_seconds(pid) for pid in children(self.pid))


class ArtemisCpu:
    def __init__(self, server):
        self.server = server

    def cpu(self) -> float:
        proc = getattr(self.server, "_proc", None)
        return group_cpu_seconds(proc.pid) if proc is not None else 0.0


def summarize_profiles(logs: Path, top: int = 12) -> None:
    """Print, per profiled process, where its samples were: own time and time below, per frame."""
    for path in sorted(logs.glob("profile-*.txt")):
        own: dict[str, int] = {}
        below: dict[str, int] = {}
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + samples
            for frame in set(frames):
                below[frame] = below.get(frame, 0) + samples
        if not total:
            continue
        print(f"\n{path.name}: {total} samples of busy threads (py-spy leaves idle ones out)")
        print("  own time:")
        for frame, samples in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {samples / total:6.1%}  {frame[:110]}")
        print("  in or below (kew and kew_django frames):")
        ours = [kv for kv in below.items() if "/kew" in kv[0] or "kew_django" in kv[0]]
        for frame, samples in sorted(ours, key=lambda kv: -kv[1])[:top]:
            print(f"    {samples / total:6.1%}  {frame[:110]}")


def percentile(ordered: list[float], p: float) -> float:
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages per throughput run")
    parser.add_argument("--latency", type=int, default=500, help="messages for the latency run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS, help="which to run"
    )
    parser.add_argument(
        "--profile", action="store_true", help="run every Python process under py-spy, print tops"
    )
    args = parser.parse_args()
    prerequisites()
    peers = peer_venv()

    from tests.harness.artemis import ArtemisServer
    from tests.harness.postgres import PostgresServer

    base = Path(tempfile.mkdtemp(prefix="kew-bench-rabbit-"))
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        artemis = stack.enter_context(ArtemisServer(fsync=True))
        rabbit = stack.enter_context(RabbitMQ(base))
        dbname = f"kew_peers_{uuid.uuid4().hex[:8]}"
        postgres.create_database(dbname)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KEW_TEST"))}
        env.update(
            DJANGO_SETTINGS_MODULE="bench.peers.settings",
            DATABASE_URL=postgres.url_for(dbname),
            KEW_BROKER_URL=artemis.url,
            KEW_LOG_LEVEL="WARNING",
            PEERS_AMQP_URL=rabbit.url,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            dramatiq_queue_prefetch="100",
        )
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "migrate", "--run-syncdb"]
            + ["--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        print(
            f"PostgreSQL ({postgres.mode}, fsync off), Artemis {artemis.version} ({artemis.mode}, "
            f"journal fsync on), RabbitMQ {rabbitmq_version()} (Debian, fsync before confirm), "
            f"dramatiq {version(peers, 'dramatiq')}, Celery {version(peers, 'celery')}; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
            flush=True,
        )
        servers = {
            "postgres": PostgresCpu(postgres),
            "artemis": ArtemisCpu(artemis),
            "rabbit": rabbit,
        }
        began = time.monotonic()
        Bench(args, peers, env, servers, Database(postgres, dbname)).main()
        print(f"  {time.monotonic() - began:.0f} s; load {os.getloadavg()[0]:.1f} at the end")


def rabbitmq_version() -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "rabbitmq-server"], capture_output=True, text=True
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
