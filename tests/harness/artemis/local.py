"""A broker run from the binary distribution, in a throwaway instance.

:meth:`LocalArtemis.start` first fetches the distribution
(:func:`~tests.harness.artemis.distribution.ensure_distribution`), creates an
instance in a temp dir (:func:`~tests.harness.artemis.instance.create_instance`)
and runs ``bin/artemis run`` in its own process group, its output in
``<tmp>/broker.log``. It is ready when the log says ``AMQ221007`` and the
STOMP port answers. :meth:`~LocalArtemis.stop` (SIGTERM) and
:meth:`~LocalArtemis.kill` (SIGKILL) keep the instance, so the next start
runs it again with the same journal and ports; :meth:`~LocalArtemis.close`
deletes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.artemis.base import READY_LINE, ArtemisServer, java_env
from tests.harness.artemis.distribution import INSTALL_HINT, ensure_distribution, find_java
from tests.harness.artemis.instance import create_instance
from tests.harness.services import ServiceStartError, ServiceUnavailable, tail, wait_for_port

__all__ = ["LocalArtemis"]


class LocalArtemis(ArtemisServer):
    """A broker process of the harness's own; Java 17+ needed (and Maven, once)."""

    mode = "local"

    _tmp: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None
    ready_line: str = READY_LINE
    """The log line that says the broker is up (a backup logs another)."""
    port_offset: int | None = None
    """Shift every port by this much (None: a random offset with free ports)."""

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 30.0)

    def log_tail(self, n: int = 50) -> str:
        if self.log_path is not None and self.log_path.exists():
            return tail(self.log_path.read_text(errors="replace"), n)
        return ""

    def _start(self) -> None:
        if self.instance_dir is not None:
            self._run()
            return
        if find_java() is None:
            raise ServiceUnavailable("Apache Artemis", INSTALL_HINT)
        self.home = ensure_distribution(self.version)
        self._tmp = Path(tempfile.mkdtemp(prefix="kew-artemis-"))
        self.instance_dir = self._tmp / "instance"
        self.log_path = self._tmp / "broker.log"
        try:
            self._create_and_run()
        except BaseException:
            self.close(graceful=False)
            raise

    def _close(self, graceful: bool) -> None:
        self._signal(signal.SIGTERM if graceful else signal.SIGKILL, 30.0)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = self.instance_dir = self.log_path = None

    def _create_and_run(self) -> None:
        assert self.home is not None and self.instance_dir is not None
        for attempt in range(3):
            self.stomp_port, self.core_port = create_instance(
                self.home,
                self.instance_dir,
                user=self.user,
                password=self.password,
                java_memory=self.java_memory,
                java_options=self.java_options,
                fsync=self.fsync,
                extra_args=self.create_args,
                port_offset=self.port_offset,
            )
            self.stomp_host = "127.0.0.1"
            self._configure()
            try:
                self._run()
                return
            except ServiceStartError:
                # another process grabbed one of our ports: new ports, new instance
                fixed = self.port_offset is not None
                if fixed or attempt == 2 or "Address already in use" not in self.log_tail(200):
                    raise

    def _configure(self) -> None:
        """Adjust the new instance's ``etc/`` before its first run (a hook; nothing here)."""

    def _ready(self, text: str) -> bool:
        """Is the broker ready, given its log since this start?"""
        return self.ready_line in text and wait_for_port(self.stomp_host, self.stomp_port, 5)

    def _run(self) -> None:
        """Run the instance and wait until it is ready (or raise with its log)."""
        assert self.instance_dir is not None and self.log_path is not None
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== tests.harness: starting broker {time.ctime()} =====\n".encode())
            offset = log.tell()
            self._proc = proc = subprocess.Popen(
                [str(self.instance_dir / "bin" / "artemis"), "run"],
                cwd=self.instance_dir,
                env=java_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            if self._ready(text):
                return
            if proc.poll() is not None or time.monotonic() >= deadline:
                why = (
                    f"exited with {proc.returncode}"
                    if proc.poll() is not None
                    else f"did not log {self.ready_line} within {self.start_timeout:.0f} s"
                )
                self._signal(signal.SIGKILL, 10)
                raise ServiceStartError(
                    f"the Artemis broker in {self.instance_dir} {why}. Log:\n{tail(text, 80)}"
                )
            time.sleep(0.05)

    def _signal(self, signum: int, timeout: float) -> None:
        """Send ``signum`` to the broker's process group; SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
