"""Relays and consumers as separate processes on one database, for the scale-out tests and bench.

Each process is ``manage.py kew_relay`` or ``kew_consume`` with
``tests/scale/settings.py``: the database and the broker URL come from
the environment, so two relays can list a cluster's nodes in different
orders. :class:`ScaleDatabase` is a fresh PostgreSQL database, migrated,
with the queries the tests count with.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(ROOT / "manage.py")]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
    """Wait until ``condition()`` is truthy and return it; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
    return value


class Stall:
    """Call ``remedy`` whenever ``progress()`` has not changed for ``seconds``.

    ``remedy`` returns whether it unblocked the run (Artemis's stranded
    delivery: ``restart_for_stranded``, docs/artemis.md); if it did not,
    ``check`` fails with ``what``. Without a remedy ``check`` does nothing.
    ``remedies`` counts the ones that helped.
    """

    def __init__(
        self, progress: Callable[[], Any], seconds: float, remedy: Callable[[], bool] | None
    ):
        self.progress, self.seconds, self.remedy = progress, seconds, remedy
        self.seen, self.since = progress(), time.monotonic()
        self.remedies = 0

    def check(self, what: str) -> None:
        """Note progress, or apply the remedy once ``seconds`` passed without any."""
        now, current = time.monotonic(), self.progress()
        if current != self.seen:
            self.seen, self.since = current, now
        elif self.remedy is not None and now - self.since > self.seconds:
            assert self.remedy(), f"no progress for {self.seconds:.0f} s: {what}"
            self.remedies += 1
            self.since = now


class ScaleDatabase:
    """A new database on a harness PostgreSQL server, migrated for the scale app."""

    def __init__(self, server: Any, logs: Path):
        self.server = server
        self.name = f"kew_scale_{uuid.uuid4().hex[:8]}"
        server.create_database(self.name)
        self.settings = server.django_database(NAME=self.name)
        self.logs = logs
        manage(["migrate", "--verbosity", "0"], self.env("database://"))

    def env(self, broker: str, **extra: str) -> dict[str, str]:
        """The environment of a process on this database and ``broker``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KEW_TEST"))}
        env.update(
            DJANGO_SETTINGS_MODULE="tests.scale.settings",
            KEW_SCALE_DB=json.dumps(self.settings),
            KEW_SCALE_BROKER=broker,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.server.connect(self.name, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def effects(self, queue: str) -> list[tuple[int, str, float]]:
        """``(n, worker, handled_at)`` of every effect recorded for ``queue``."""
        rows = self.query(
            "select n, worker, handled_at from scale_effect where queue = %s order by handled_at",
            queue,
        )
        return [(int(n), str(worker), float(at)) for n, worker, at in rows]

    def distinct(self, queue: str) -> int:
        return int(
            self.query("select count(distinct n) from scale_effect where queue = %s", queue)[0][0]
        )

    def unsent(self) -> int:
        """Outbox rows not yet confirmed by the broker."""
        return int(
            self.query("select count(*) from kew_django_outboxmessage where status <> 'sent'")[0][0]
        )

    def drop(self) -> None:
        with self.server.connect("postgres", autocommit=True) as conn:
            conn.execute(f'drop database if exists "{self.name}" with (force)')


class Process:
    """``manage.py <args>`` in a child process, its output in ``<logs>/<name>.log``."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path):
        self.name = name
        self.args = args
        self.env = {**env, "KEW_SCALE_WORKER": name}
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [*MANAGE, *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_output(self, text: str, timeout: float = 60.0) -> None:
        wait_for(
            lambda: text in self.output() or not self.running(), timeout, f"{self.name}: {text!r}"
        )
        if text not in self.output():
            raise AssertionError(f"{self.name} exited:\n{self.tail()}")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (Linux ``/proc``)."""
        if not self.running():
            return 0.0
        assert self.popen is not None
        return cpu_seconds(self.popen.pid)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); return the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def duplicates(self, queue: str) -> int:
        """Deliveries of ``queue`` its idempotent consumer knew as handled (last progress line)."""
        line = rf"consume {re.escape(queue)}: \d+ deliveries \([^)]*\)[^\n]*?(\d+) duplicate"
        counts = re.findall(line, self.output())
        return int(counts[-1]) if counts else 0


def relay(name: str, env: dict[str, str], logs: Path, *args: str) -> Process:
    return Process(name, ["kew_relay", *args], env, logs).start()


def consume(name: str, env: dict[str, str], logs: Path, *queues: str) -> Process:
    return Process(name, ["kew_consume", *queues], env, logs).start()


def manage(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Run a management command to completion; return its output, raise if it fails."""
    result = subprocess.run(
        [*MANAGE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # fields[11:15] are utime, stime, cutime, cstime (fields 14-17 of proc(5))
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every process in process group ``pgid`` (a broker and its JVM)."""
    # field 5 of proc(5): pgrp
    return sum(cpu_seconds(pid) for pid, fields in _live_stats() if int(fields[2]) == pgid)


def children(parent: int) -> list[int]:
    """Return the pids of the live processes whose parent is ``parent``."""
    return [pid for pid, fields in _live_stats() if int(fields[1]) == parent]  # field 4: ppid


def _live_stats() -> Iterator[tuple[int, list[str]]]:
    """Yield (pid, the fields of /proc/pid/stat after the command) of every live process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        yield int(stat.parent.name), fields
