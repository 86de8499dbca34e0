"""One RabbitMQ node run from the server scripts, every file of it in one directory.

A :class:`Node` has its own name (``kew-<hex>@localhost``), AMQP port,
Erlang distribution port and epmd port (``ERL_EPMD_PORT``), so it never
meets Debian's system service or another test run; its Erlang cookie is
``<home>/.erlang.cookie`` (nodes of one cluster share ``home``). Its
mnesia (data), logs, ``rabbitmq.conf`` and ``enabled_plugins`` live in
``directory``. No plugin is enabled. Given a server certificate and a
port, it also listens for AMQP over TLS there (``listeners.ssl``; client
certificates are not asked for).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.harness.rabbitmq.base import amqp_answers
from tests.harness.rabbitmq.tls import ServerCertificate
from tests.harness.services import ServiceStartError, tail, wait_for_port

__all__ = ["Node", "write_cookie"]


def write_cookie(home: Path, cookie: str) -> None:
    """Write the Erlang cookie that the nodes and ``rabbitmqctl`` of ``home`` share."""
    path = home / ".erlang.cookie"
    path.write_text(cookie)
    path.chmod(0o400)


class Node:
    """A RabbitMQ node of the harness's own (see the module docstring). Not thread-safe."""

    def __init__(
        self,
        sbin: Path,
        directory: Path,
        home: Path,
        *,
        nodename: str,
        ports: tuple[int, int, int],
        user: str,
        password: str,
        extra_config: str = "",
        tls_port: int = 0,
        certificate: ServerCertificate | None = None,
    ) -> None:
        self.sbin = sbin
        self.directory = directory
        self.home = home
        self.nodename = nodename
        self.amqp_port, self.dist_port, self.epmd_port = ports
        self.user = user
        self.password = password
        self.extra_config = extra_config
        self.tls_port = tls_port if certificate is not None else 0
        self.certificate = certificate
        self.log_path = directory / "log" / f"{nodename}.log"
        self.output_path = directory / "output.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The environment of this node's server and CLI processes."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.home),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.directory / "log"),
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.directory / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.directory / "rabbitmq-env.conf"),  # none: not /etc's
            RABBITMQ_PID_FILE=str(self.directory / "rabbitmq.pid"),
        )
        return env

    def configure(self) -> None:
        """Write the node's configuration (before its first start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        lines = [
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
            f"default_user = {self.user}",
            f"default_pass = {self.password}",
            "loopback_users = none",
            "log.console = false",
            "log.file.level = info",
            # temp dirs on CI machines are small: a disk alarm would block every publisher
            "disk_free_limit.absolute = 1MB",
            *self._tls_config(),
            self.extra_config,
        ]
        (self.directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    def _tls_config(self) -> list[str]:
        if self.certificate is None:
            return []
        return [
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
            f"ssl_options.cacertfile = {self.certificate.ca}",
            f"ssl_options.certfile = {self.certificate.cert}",
            f"ssl_options.keyfile = {self.certificate.key}",
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
        ]

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float) -> None:
        """Run the node and wait until it accepts an AMQP login (or raise with its log)."""
        self.launch()
        self.wait(timeout)

    def launch(self) -> None:
        """Run the node's server script in its own process group (see :meth:`wait`)."""
        with open(self.output_path, "ab") as output:
            output.write(f"\n===== tests.harness: starting {time.ctime()} =====\n".encode())
            self._proc = subprocess.Popen(
                [str(self.sbin / "rabbitmq-server")],
                cwd=self.directory,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float) -> None:
        """Wait until the launched node accepts an AMQP login; raise with its log if it does not."""
        problem = self._wait_ready(timeout)
        if problem is not None:
            self.signal(signal.SIGKILL, 10)
            raise ServiceStartError(
                f"RabbitMQ node {self.nodename} in {self.directory} {problem}.\n"
                f"Output:\n{tail(self._read(self.output_path), 30)}\n"
                f"Log:\n{self.log_tail(60)}"
            )

    def _wait_ready(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while self.is_running():
            left = deadline - time.monotonic()
            if left <= 0:
                return f"did not accept AMQP within {timeout:.0f} s"
            if amqp_answers("127.0.0.1", self.amqp_port, self.user, self.password, 0) is None:
                # the TLS listener may open a moment after the plain one
                if self.tls_port and not wait_for_port("127.0.0.1", self.tls_port, left):
                    return f"did not listen on its TLS port {self.tls_port}"
                return None
            time.sleep(0.2)
        assert self._proc is not None
        return f"exited with {self._proc.returncode}"

    def signal(self, signum: int, timeout: float) -> None:
        """Send ``signum`` to the node's process group; SIGKILL if it lingers.

        SIGTERM is a clean shutdown of the Erlang VM (queues closed, data
        kept); SIGKILL is a crash.
        """
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

    def ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``rabbitmqctl -n <node> <args>``; raise ServiceStartError if it fails."""
        command = [str(self.sbin / "rabbitmqctl"), "-n", self.nodename, *args]
        result = subprocess.run(
            command,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"rabbitmqctl {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def stop_epmd(self) -> None:
        """Stop the epmd daemon that the node started on its own port (it outlives the node)."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["epmd", "-kill"], env=self.env(), capture_output=True, timeout=10, check=False
            )

    def log_tail(self, n: int = 50) -> str:
        return tail(self._read(self.log_path), n)

    @staticmethod
    def _read(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""
