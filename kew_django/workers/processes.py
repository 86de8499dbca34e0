"""Run N ``kew_consume`` processes and supervise them (``kew_consume --processes N``).

Threads share one GIL, so a CPU-bound handler runs no faster on more
threads; processes do, as dramatiq's and Celery's workers offer. Each
child is an ordinary ``manage.py kew_consume`` with the same queues,
concurrency and provider, so every guarantee is the child's own (ack
after the handler's commit, idempotency in its transaction).

The supervisor forwards SIGTERM and SIGINT to every child, which then
finishes the delivery in hand, and waits for them. A child that exits
while nobody asked it to stop ends the others too, and the supervisor
exits non-zero, so that the process manager (systemd, Kubernetes)
restarts the whole group and sees the failure.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)


def consume_command(queues: Sequence[str], *, concurrency: int | None, provider: str) -> list[str]:
    """Return the command line of one ``kew_consume`` child."""
    command = [sys.executable, os.path.abspath(sys.argv[0]), "kew_consume", *queues]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return [*command, "--provider", provider]


class Supervisor:
    """Start ``count`` copies of ``command`` and watch them until they all end."""

    def __init__(self, command: Sequence[str], count: int, *, env: dict[str, str] | None = None):
        if count < 1:
            raise ValueError(f"--processes must be at least 1, got {count}")
        self.command = list(command)
        self.count = count
        self.env = env
        self.stopping = threading.Event()
        self.children: list[subprocess.Popen[bytes]] = []

    def stop(self) -> None:
        """Ask every child to finish the delivery in hand and stop (SIGTERM)."""
        self.stopping.set()
        self._signal(signal.SIGTERM)

    def run(self, poll: float = 0.2) -> int:
        """Start the children; return 0 when they stopped as asked, 1 when one died first."""
        self.children = [subprocess.Popen(self.command, env=self.env) for _ in range(self.count)]
        log.info("kew: %d consumer processes started", self.count)
        while True:
            ended = [child for child in self.children if child.poll() is not None]
            if len(ended) == len(self.children):
                break
            if ended and not self.stopping.is_set():
                log.error(
                    "kew: consumer process %d exited unexpectedly (code %s); stopping the others",
                    ended[0].pid,
                    ended[0].returncode,
                )
                self.stopping.set()
                self._signal(signal.SIGTERM)
                for child in self.children:
                    child.wait()
                return 1
            time.sleep(poll)
        codes = [child.returncode for child in self.children]
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def _signal(self, signum: int) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signum)
