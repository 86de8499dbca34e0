"""Helpers of the end-to-end tests: a real SMTP server that can refuse mail, and processes.

The application runs as it does in production: ``manage.py runserver``,
``kew_relay`` and ``kew_consume`` as separate processes on one database,
each with its own log file under the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.harness.services import free_port, wait_for_port

BASE = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(BASE / "manage.py")]


@dataclass(frozen=True)
class Received:
    """One e-mail the SMTP server accepted."""

    message_id: str
    import_id: str
    status: str
    to: tuple[str, ...]
    subject: str


class FlakySMTPHandler:
    """An aiosmtpd handler that keeps what it accepts and answers 451 while ``refusing``."""

    def __init__(self) -> None:
        self.refusing = threading.Event()
        self.refused = 0
        self.received: list[Received] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        if self.refusing.is_set():
            with self._lock:
                self.refused += 1
            return "451 4.3.0 Mail server busy, try again later"
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self._lock:
            self.received.append(
                Received(
                    message_id=str(message["Message-ID"]),
                    import_id=str(message["X-Kew-Import-Id"]),
                    status=str(message["X-Kew-Import-Status"]),
                    to=tuple(envelope.rcpt_tos),
                    subject=str(message["Subject"]),
                )
            )
        return "250 OK"

    def refusals(self) -> int:
        with self._lock:
            return self.refused

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


class SMTPServer:
    """A real SMTP server on 127.0.0.1 and a free port, in this process."""

    def __init__(self) -> None:
        self.handler = FlakySMTPHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class StallingProxy:
    """A TCP proxy to a server that, while ``stalling`` is set, accepts and then says nothing.

    A client connected while it stalls is held silent until ``release()``
    closes its connection (as a mail server that hangs would be dropped by
    the client's timeout); afterwards connections go through to the server.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.stalling = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False

    def __enter__(self) -> StallingProxy:
        threading.Thread(target=self._accept, name="stalling-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        self.listener.close()
        self.release()

    def holding(self) -> int:
        """Return how many connections are held silent now."""
        with self.lock:
            return len(self.held)

    def release(self) -> None:
        """Stop stalling and drop every connection held so far."""
        self.stalling.clear()
        with self.lock:
            held, self.held = self.held, []
        for connection in held:
            connection.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stalling.is_set():
                with self.lock:
                    self.held.append(client)
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes from ``source`` to ``sink`` until either side closes."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class Process:
    """A management command run as a child process, logged to a file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], logs: Path, *, ready: str = ""
    ):
        self.name = name
        self.args = args
        self.env = env
        self.ready = ready
        self.log_path = logs / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 30.0) -> Process:
        """Start the command; wait until its log shows the ``ready`` line, if one is set."""
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n===== start #{self.starts}: manage.py {' '.join(self.args)}\n")
            offset = log.tell()
            log.flush()
            self.popen = subprocess.Popen(
                [*MANAGE, *self.args], cwd=BASE, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if self.ready and not wait_until(lambda: self.ready in self.output(offset), timeout):
            raise AssertionError(f"{self.name} did not start:\n{self.tail()}")
        return self

    def output(self, offset: int = 0) -> str:
        with self.log_path.open(errors="replace") as log:
            log.seek(offset)
            return log.read()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``sig``, wait for the exit, SIGKILL after ``timeout``; return the exit code."""
        if not self.running():
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            return None

    def restart(self, sig: int) -> int | None:
        code = self.stop(sig)
        self.start()
        return code

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def manage(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    """Run a management command to completion; return its output, raise if it fails."""
    result = subprocess.run(
        [*MANAGE, *args], cwd=BASE, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def app_env(**overrides: str) -> dict[str, str]:
    """Return the environment of the app's processes: this one's, minus test-only settings.

    They run the project's settings, with the database provider's lease
    shortened (``tests/project/e2e_settings.py``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "KEW_TEST"))}
    env.update(DJANGO_SETTINGS_MODULE="tests.project.e2e_settings", PYTHONUNBUFFERED="1")
    env.update(IMPORT_USER_FOLDERS="false")  # the scenarios share one root
    env.update(overrides)
    return env


class WebServer(Process):
    """``manage.py runserver`` on a free port, and a JSON client for it."""

    token: str | None = None  # sent as "Authorization: Bearer <token>" when set

    def __init__(self, env: dict[str, str], logs: Path, *, token: str | None = None):
        self.port = free_port()
        self.token = token
        super().__init__("web", ["runserver", "--noreload", f"127.0.0.1:{self.port}"], env, logs)

    def start(self) -> WebServer:
        super().start()
        if not wait_for_port("127.0.0.1", self.port, 30):
            raise AssertionError(f"the web server did not start:\n{self.tail()}")
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url(path), data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def create_token(env: dict[str, str], username: str = "e2e", email: str = "e2e@x.org") -> str:
    """Create a user with an API token in the app's database; return the token."""
    return manage(["create_api_token", username, "--email", email], env).strip().splitlines()[-1]


def wait_until(condition, timeout: float, interval: float = 0.25) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


# Run inside the app (manage.py shell -c): what is left in the outbox, queues and dead letters.
REPORT_SCRIPT = """
import json
from collections import Counter
from kew_django.models import DeadLetter, OutboxMessage, QueuedMessage
from project.imports.messages import IMPORTS_QUEUE, OUTCOMES_QUEUE
from project.imports.models import Import
from kew_django import get_provider

waiting = {}
for queue in (IMPORTS_QUEUE, OUTCOMES_QUEUE):
    try:
        waiting[queue] = len(list(get_provider().browse(queue, limit=1000)))
    except Exception as error:
        waiting[queue] = repr(error)
print(json.dumps({
    "outbox": dict(Counter(OutboxMessage.objects.values_list("status", flat=True))),
    "queued": QueuedMessage.objects.count(),
    "waiting": waiting,
    "dead": [
        {"queue": d.queue, "reason": d.reason, "state": d.state,
         "payload": bytes(d.payload).decode()}
        for d in DeadLetter.objects.all()
    ],
    "imports": {
        str(i.pk): {"status": i.status, "attempts": i.attempts, "error": i.error,
                    "notified": i.notified_at is not None, "files": i.file_count}
        for i in Import.objects.all()
    },
}))
"""


def report(env: dict[str, str]) -> dict[str, Any]:
    """Return what the database says about the outbox, queues, dead letters and imports."""
    output = manage(["shell", "-c", REPORT_SCRIPT], env)
    return json.loads(output.strip().splitlines()[-1])
