"""A real Apache ActiveMQ Artemis broker for tests.

:class:`ArtemisServer` gets a broker in this order:

1. ``KEW_TEST_ARTEMIS_URL`` (``artemis://user:password@host:port``, the STOMP
   port), used as is after checking that the port answers;
2. a Docker container of ``apache/activemq-artemis`` (testcontainers), if a
   Docker engine answers a ping;
3. the binary distribution (Maven artifact
   ``org.apache.activemq:apache-artemis:<version>:tar.gz:bin``), downloaded once
   with ``mvn`` into a cache outside the repository (``$KEW_CACHE_DIR`` or
   ``~/.cache/kew``), unpacked once, and a throwaway broker instance created
   with ``bin/artemis create`` in a temp dir, on free ports of 127.0.0.1.

In the local mode the broker can be stopped and started again on the same
instance (same journal, same ports): :meth:`ArtemisServer.restart` for a clean
shutdown, :meth:`ArtemisServer.kill` (SIGKILL) to simulate a crash. This
module never imports Django.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kew.testing.services import (
    ServiceStartError,
    ServiceUnavailable,
    docker_available,
    port_is_free,
    service_unsupported,
    wait_for_port,
)

__all__ = ["ARTEMIS_VERSION", "ArtemisServer", "cache_dir", "ensure_distribution"]

ARTEMIS_VERSION = "2.40.0"
ENV_URL = "KEW_TEST_ARTEMIS_URL"
ENV_CORE_URL = "KEW_TEST_ARTEMIS_CORE_URL"
ENV_HOME = "KEW_TEST_ARTEMIS_HOME"
ENV_CACHE = "KEW_CACHE_DIR"
DEFAULT_IMAGE = f"apache/activemq-artemis:{ARTEMIS_VERSION}"
READY_LINE = "AMQ221007"  # "Server is now active"
STOPPED_LINE = "AMQ221002"  # "... stopped, uptime ..."
STOMP_PORT = 61613
CORE_PORT = 61616
# C1 only and a small initial heap: the broker is ready in ~2 s instead of ~3 s.
DEFAULT_JAVA_OPTIONS: tuple[str, ...] = ("-Xms64M", "-XX:TieredStopAtLevel=1")

INSTALL_HINT = (
    "Java 17+ and Maven are needed to fetch and run the broker: "
    "`apt-get install openjdk-17-jre-headless maven` (Debian/Ubuntu), "
    f"or set {ENV_URL}=artemis://user:password@host:61613, or run a Docker engine"
)

_live: weakref.WeakSet[ArtemisServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """At interpreter exit, no broker the harness started may survive."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close(graceful=False)


def cache_dir() -> Path:
    """``$KEW_CACHE_DIR`` or ``~/.cache/kew``: downloads live here, never in the repo."""
    configured = os.environ.get(ENV_CACHE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kew"


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: rely on the atomic renames alone
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_java() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def _download(version: str, target: Path) -> None:
    """Fetch the distribution tarball with Maven into ``target`` (atomically)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceUnavailable("Apache Artemis", INSTALL_HINT)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mvn-", dir=target.parent))
    try:
        artifact = f"org.apache.activemq:apache-artemis:{version}:tar.gz:bin"
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy",
                f"-Dartifact={artifact}",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        downloaded = staging / target.name
        if result.returncode != 0 or not downloaded.exists():
            raise ServiceStartError(
                f"mvn could not fetch {artifact} (exit {result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(tarball: Path, parent: Path, name: str) -> Path:
    """Unpack ``tarball`` (top dir ``name``) into ``parent/name`` atomically."""
    final = parent / name
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=parent))
    try:
        with tarfile.open(tarball) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, filter="data")
            else:  # Python without extraction filters: refuse odd member names
                for member in archive.getmembers():
                    target = (staging / member.name).resolve()
                    if not str(target).startswith(str(staging.resolve())) or member.issym():
                        raise ServiceStartError(f"refusing to unpack {member.name!r}")
                archive.extractall(staging)
        if not (staging / name / "bin" / "artemis").exists():
            raise ServiceStartError(f"{tarball} does not contain {name}/bin/artemis")
        try:
            os.rename(staging / name, final)
        except OSError:
            if not (final / "bin" / "artemis").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def ensure_distribution(version: str = ARTEMIS_VERSION) -> Path:
    """The unpacked Artemis distribution (``ARTEMIS_HOME``), fetched if needed.

    ``$KEW_TEST_ARTEMIS_HOME`` names an existing distribution to use instead.
    Otherwise ``<cache>/artemis-dl/apache-artemis-<v>-bin.tar.gz`` is fetched
    with Maven if absent and unpacked once to ``<cache>/artemis/apache-artemis-<v>``.
    Safe against several processes doing it at once (file lock + atomic renames).
    """
    configured = os.environ.get(ENV_HOME)
    if configured:
        home = Path(configured).expanduser()
        if not (home / "bin" / "artemis").exists():
            raise ServiceStartError(f"{ENV_HOME}={home} has no bin/artemis")
        return home
    cache = cache_dir()
    name = f"apache-artemis-{version}"
    home = cache / "artemis" / name
    if (home / "bin" / "artemis").exists():
        return home
    with _file_lock(cache / "artemis.lock"):
        if (home / "bin" / "artemis").exists():
            return home
        tarball = cache / "artemis-dl" / f"{name}-bin.tar.gz"
        if not tarball.exists():
            _download(version, tarball)
        home.parent.mkdir(parents=True, exist_ok=True)
        return _unpack(tarball, home.parent, name)


def _acceptor_ports(broker_xml: Path) -> dict[str, int]:
    """``{acceptor name: port}`` from an instance's ``etc/broker.xml``."""
    ports: dict[str, int] = {}
    root = ET.parse(broker_xml).getroot()
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "acceptor" or not element.text:
            continue
        port = urlsplit(element.text.strip()).port
        if port is not None:
            ports[element.get("name") or f"acceptor{len(ports)}"] = port
    return ports


def _tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])


class ArtemisServer:
    """An Artemis broker for tests.

    Connection attributes (valid after :meth:`start`): ``stomp_host``,
    ``stomp_port``, ``core_port``, ``user``, ``password``, ``url``
    (``artemis://user:password@host:port``, the STOMP port), ``core_url``
    (``tcp://host:port`` for the distribution's CLI and other core clients),
    ``mode`` (``"url"``, ``"docker"`` or ``"local"``). Local mode also sets
    ``home`` (the distribution), ``instance_dir`` and ``log_path``.

    Lifecycle: :meth:`start` (idempotent; after :meth:`stop` or :meth:`kill`
    it starts the same instance again, with its journal), :meth:`stop`
    (clean shutdown, data kept), :meth:`restart`, :meth:`kill` (SIGKILL, a
    crash), :meth:`close` (stop and delete the instance).
    """

    def __init__(
        self,
        *,
        user: str = "kew",
        password: str = "kew",
        version: str = ARTEMIS_VERSION,
        image: str = DEFAULT_IMAGE,
        java_memory: str = "512M",
        java_options: Sequence[str] = DEFAULT_JAVA_OPTIONS,
        fsync: bool = False,
        start_timeout: float = 90.0,
        create_args: Sequence[str] = (),
        use_docker: bool | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.@-]+", user):
            # the instance keeps users in a Java properties file: no spaces, ':' or '='
            raise ValueError(f"Artemis user names must match [A-Za-z0-9_.@-]+, got {user!r}")
        self.user = user
        self.password = password
        self.version = version
        self.image = image
        self.java_memory = java_memory
        self.java_options = tuple(java_options)
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.create_args = tuple(create_args)
        self.use_docker = use_docker
        self.mode: str | None = None
        self.stomp_host = "127.0.0.1"
        self.stomp_port = 0
        self.core_port = 0
        self.home: Path | None = None
        self.instance_dir: Path | None = None
        self.log_path: Path | None = None
        self.start_seconds: float | None = None  # how long the last start took
        self._external_url: str | None = None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._container: Any = None
        self._container_starts = 0

    # ---------------------------------------------------------- addresses

    @property
    def url(self) -> str:
        if self._external_url:
            return self._external_url
        return (
            f"artemis://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.stomp_host}:{self.stomp_port}"
        )

    @property
    def core_url(self) -> str:
        return f"tcp://{self.stomp_host}:{self.core_port}"

    @property
    def controllable(self) -> bool:
        """Can :meth:`stop`/:meth:`restart`/:meth:`kill` be used (not an external URL)?"""
        return self.mode in {"local", "docker"}

    def __repr__(self) -> str:
        return f"<ArtemisServer mode={self.mode} stomp={self.stomp_host}:{self.stomp_port}>"

    # ---------------------------------------------------------- lifecycle

    def start(self) -> ArtemisServer:
        """Have a running broker (see the module doc for where it comes from)."""
        began = time.monotonic()
        if self.mode is None:
            if os.environ.get(ENV_URL):
                self._use_url(os.environ[ENV_URL])
            elif (self.use_docker is not False) and docker_available():
                self._start_docker()
            else:
                self._start_local_first()
        elif self.mode == "local":
            if not self.is_running():
                self._run_instance()
        elif self.mode == "docker":
            self._start_docker_again()
        self.start_seconds = time.monotonic() - began
        return self

    def is_running(self) -> bool:
        if self.mode == "local":
            return self._proc is not None and self._proc.poll() is None
        if self.mode == "docker":
            with contextlib.suppress(Exception):
                self._container.reload()
                return self._container.status == "running"
            return False
        return self.mode == "url"

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the broker down cleanly (SIGTERM); its instance and journal stay."""
        if self.mode == "local":
            self._signal(signal.SIGTERM, timeout)
        elif self.mode == "docker":
            self._container.get_wrapped_container().stop(timeout=int(timeout))
        elif self.mode == "url":
            service_unsupported(f"cannot stop the external broker given by {ENV_URL}")

    def kill(self) -> None:
        """SIGKILL the broker, like a crash. :meth:`start` brings it back."""
        if self.mode == "local":
            self._signal(signal.SIGKILL, 30.0)
        elif self.mode == "docker":
            self._container.get_wrapped_container().kill()
        elif self.mode == "url":
            service_unsupported(f"cannot kill the external broker given by {ENV_URL}")

    def restart(self) -> ArtemisServer:
        """A real stop and start of the same broker, keeping its journal and ports."""
        self.stop()
        return self.start()

    def close(self, graceful: bool = True) -> None:
        """Stop the broker (if the harness started it) and delete its instance."""
        _live.discard(self)
        if self.mode == "local":
            self._signal(signal.SIGTERM if graceful else signal.SIGKILL, 30.0)
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
        elif self.mode == "docker" and self._container is not None:
            with contextlib.suppress(Exception):
                self._container.stop()
            self._container = None
        self.mode = None

    def __enter__(self) -> ArtemisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --------------------------------------------------------------- logs

    def log_tail(self, n: int = 50) -> str:
        """The last ``n`` lines of the broker's console log ("" if unknown)."""
        if self.mode == "docker" and self._container is not None:
            with contextlib.suppress(Exception):
                out, err = self._container.get_logs()
                return _tail(
                    (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace"), n
                )
            return ""
        if self.log_path is not None and self.log_path.exists():
            return _tail(self.log_path.read_text(errors="replace"), n)
        return ""

    # ---------------------------------------------------------------- CLI

    def cli(
        self,
        *args: str,
        timeout: float = 120.0,
        check: bool = False,
        connect: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the distribution's ``bin/artemis`` with ``args``.

        With ``connect`` (the default) ``--url <core_url> --user U --password P``
        are appended, which ``producer``, ``consumer``, ``browser`` and
        ``queue stat`` (among others) accept. Output is captured as text;
        ``check=True`` raises :class:`subprocess.CalledProcessError` on failure.
        For a broker given by URL the core port is ``$KEW_TEST_ARTEMIS_CORE_URL``
        or 61616 on the STOMP host.
        """
        if self.instance_dir is not None:
            executable = self.instance_dir / "bin" / "artemis"
        else:
            if self.home is None:
                self.home = ensure_distribution(self.version)
            executable = self.home / "bin" / "artemis"
        command = [str(executable), *args]
        if connect:
            command += ["--url", self.core_url, "--user", self.user, "--password", self.password]
        env = dict(os.environ)
        env.pop("JAVA_ARGS", None)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, command, output=result.stdout, stderr=result.stderr
            )
        return result

    def queue_stat(self, queue: str, timeout: float = 120.0) -> dict[str, str] | None:
        """The broker's statistics for queue ``queue`` (None if it does not exist).

        Runs ``artemis queue stat --json`` and returns the entry named exactly
        ``queue``: a dict of strings such as ``messageCount``, ``messagesAdded``,
        ``messagesAcked``, ``deliveringCount``, ``scheduledCount``,
        ``consumerCount``, ``routingType``.
        """
        result = self.cli(
            "queue",
            "stat",
            "--json",
            "--queueName",
            queue,
            "--maxRows",
            "1000",
            timeout=timeout,
            check=True,
        )
        text = result.stdout
        data = json.loads(text[text.index("{") :])
        for entry in data.get("data", []):
            if entry.get("name") == queue:
                return entry
        return None

    # ------------------------------------------------------------ url mode

    def _use_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "artemis" or not parts.hostname:
            raise ServiceStartError(
                f"{ENV_URL} must look like artemis://user:password@host:port, got {parts.scheme}://…"
            )
        self.mode = "url"
        self._external_url = url
        self.stomp_host = parts.hostname
        self.stomp_port = parts.port or STOMP_PORT
        if parts.username is not None:
            self.user = unquote(parts.username)
        if parts.password is not None:
            self.password = unquote(parts.password)
        core = urlsplit(os.environ.get(ENV_CORE_URL, ""))
        self.core_port = core.port or CORE_PORT
        if not wait_for_port(self.stomp_host, self.stomp_port, timeout=10):
            raise ServiceStartError(
                f"{ENV_URL} points at {self.stomp_host}:{self.stomp_port}, which does not answer"
            )

    # --------------------------------------------------------- docker mode

    def _start_docker(self) -> None:
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(self.image)
            .with_env("ARTEMIS_USER", self.user)
            .with_env("ARTEMIS_PASSWORD", self.password)
            .with_exposed_ports(STOMP_PORT, CORE_PORT)
        )
        self.mode = "docker"
        self._container = container
        _live.add(self)
        container.start()
        self._container_starts = 0
        self._wait_docker_ready()

    def _start_docker_again(self) -> None:
        if self.is_running():
            return
        self._container.get_wrapped_container().start()
        self._wait_docker_ready()

    def _wait_docker_ready(self) -> None:
        self._container_starts += 1
        deadline = time.monotonic() + self.start_timeout
        while True:
            out, err = self._container.get_logs()
            text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
            if text.count(READY_LINE) >= self._container_starts:
                break
            if time.monotonic() >= deadline:
                raise ServiceStartError(
                    f"the Artemis container did not log {READY_LINE} within "
                    f"{self.start_timeout:.0f} s. Log:\n{_tail(text, 80)}"
                )
            time.sleep(0.2)
        # host ports may change when a container is started again
        self._container.get_wrapped_container().reload()
        self.stomp_host = self._container.get_container_host_ip()
        self.stomp_port = int(self._container.get_exposed_port(STOMP_PORT))
        self.core_port = int(self._container.get_exposed_port(CORE_PORT))
        if not wait_for_port(self.stomp_host, self.stomp_port, timeout=self.start_timeout):
            raise ServiceStartError("the Artemis container's STOMP port does not answer")

    # ---------------------------------------------------------- local mode

    def _start_local_first(self) -> None:
        java = _find_java()
        if java is None:
            raise ServiceUnavailable("Apache Artemis", INSTALL_HINT)
        self.home = ensure_distribution(self.version)
        self.mode = "local"
        self._tmp = Path(tempfile.mkdtemp(prefix="kew-artemis-"))
        self.instance_dir = self._tmp / "instance"
        self.log_path = self._tmp / "broker.log"
        _live.add(self)
        try:
            for attempt in range(3):
                self._create_instance()
                try:
                    self._run_instance()
                    return
                except ServiceStartError:
                    # another process grabbed one of our ports: new ports, new instance
                    if attempt == 2 or "Address already in use" not in self.log_tail(200):
                        raise
        except BaseException:
            self.close(graceful=False)
            raise

    def _create_instance(self) -> None:
        assert self.home is not None and self.instance_dir is not None
        shutil.rmtree(self.instance_dir, ignore_errors=True)
        for _ in range(50):
            # every acceptor port is default + offset; >= 61613 is above Linux's
            # ephemeral range, so outgoing connections never take these ports
            offset = random.randint(1, 3800)
            if port_is_free(STOMP_PORT + offset) and port_is_free(CORE_PORT + offset):
                break
        command = [
            str(self.home / "bin" / "artemis"),
            "create",
            str(self.instance_dir),
            "--silent",
            "--user",
            self.user,
            "--password",
            self.password,
            "--require-login",
            "--no-web",
            "--no-amqp-acceptor",
            "--no-hornetq-acceptor",
            "--no-mqtt-acceptor",
            "--no-autotune",
            "--host",
            "127.0.0.1",
            "--port-offset",
            str(offset),
            f"--java-memory={self.java_memory}",
            *(f"--java-options={option}" for option in self.java_options),
        ]
        if not self.fsync:
            command.append("--no-fsync")
        command += self.create_args
        env = dict(os.environ)
        env.pop("JAVA_ARGS", None)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"`artemis create` failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        ports = _acceptor_ports(self.instance_dir / "etc" / "broker.xml")
        busy = {name: port for name, port in ports.items() if not port_is_free(port)}
        if busy:
            raise ServiceStartError(f"acceptor ports already taken: {busy}")
        self.stomp_port = ports.get("stomp") or ports.get("artemis") or STOMP_PORT + offset
        self.core_port = ports.get("artemis") or CORE_PORT + offset
        self.stomp_host = "127.0.0.1"

    def _run_instance(self) -> None:
        assert self.instance_dir is not None and self.log_path is not None
        env = dict(os.environ)
        env.pop("JAVA_ARGS", None)  # the instance's etc/artemis.profile has ours
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== kew.testing: starting broker {time.ctime()} =====\n".encode())
            offset = log.tell()
            self._proc = subprocess.Popen(
                [str(self.instance_dir / "bin" / "artemis"), "run"],
                cwd=self.instance_dir,
                env=env,
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
            if READY_LINE in text and wait_for_port(self.stomp_host, self.stomp_port, 5):
                return
            if self._proc.poll() is not None or time.monotonic() >= deadline:
                why = (
                    f"exited with {self._proc.returncode}"
                    if self._proc.poll() is not None
                    else f"did not log {READY_LINE} within {self.start_timeout:.0f} s"
                )
                self._signal(signal.SIGKILL, 10)
                raise ServiceStartError(
                    f"the Artemis broker in {self.instance_dir} {why}. Log:\n{_tail(text, 80)}"
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
