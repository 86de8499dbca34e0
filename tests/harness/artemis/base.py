"""What every Artemis broker of the harness offers, wherever it comes from."""

from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kew.providers.artemis import ArtemisProvider, stranded
from tests.harness.artemis.distribution import ARTEMIS_VERSION, ensure_distribution
from tests.harness.lifecycle import Server

__all__ = ["CORE_PORT", "DEFAULT_IMAGE", "READY_LINE", "STOMP_PORT", "ArtemisServer"]

DEFAULT_IMAGE = f"apache/activemq-artemis:{ARTEMIS_VERSION}"
READY_LINE = "AMQ221007"  # "Server is now active"
STOMP_PORT = 61613
CORE_PORT = 61616
# C1 only and a small initial heap: the broker is ready in ~2 s instead of ~3 s.
DEFAULT_JAVA_OPTIONS: tuple[str, ...] = ("-Xms64M", "-XX:TieredStopAtLevel=1")


class ArtemisServer(Server):
    """An Artemis broker for tests, with the lifecycle of :mod:`tests.harness.lifecycle`.

    ``ArtemisServer(**options)`` returns the subclass for the source that
    :func:`tests.harness.artemis.pick_source` picks (as ``pathlib.Path()``
    returns a ``PosixPath``): :class:`~tests.harness.artemis.url.UrlArtemis`,
    :class:`~tests.harness.artemis.docker.DockerArtemis` or
    :class:`~tests.harness.artemis.local.LocalArtemis`. Nothing starts before
    :meth:`start`.

    Connection attributes (valid after :meth:`start`): ``stomp_host``,
    ``stomp_port``, ``core_port``, ``user``, ``password``, ``url``
    (``artemis://user:password@host:port``, the STOMP port), ``core_url``
    (``tcp://host:port`` for the distribution's CLI and other core clients),
    ``mode``. Local brokers also set ``home`` (the distribution),
    ``instance_dir`` and ``log_path``.
    """

    def __new__(cls, **options: Any) -> ArtemisServer:
        chosen = cls
        if cls is ArtemisServer:
            from tests.harness.artemis import pick_source

            chosen = pick_source(use_docker=options.get("use_docker"))
        return super().__new__(chosen)

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
        self.stomp_host = "127.0.0.1"
        self.stomp_port = 0
        self.core_port = 0
        self.home: Path | None = None
        self.instance_dir: Path | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """``artemis://user:password@host:port`` (the STOMP port, percent-encoded)."""
        return (
            f"artemis://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.stomp_host}:{self.stomp_port}"
        )

    @property
    def core_url(self) -> str:
        """``tcp://host:port`` of the core acceptor, for the CLI and core clients."""
        return f"tcp://{self.stomp_host}:{self.core_port}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} stomp={self.stomp_host}:{self.stomp_port}>"

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
        A broker not run from the distribution fetches it first
        (:class:`~tests.harness.services.ServiceUnavailable` without Maven).
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
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=java_env(),
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
            "queue", "stat", "--json", "--queueName", queue, "--maxRows", "1000",
            timeout=timeout, check=True,
        )  # fmt: skip
        text = result.stdout
        data = json.loads(text[text.index("{") :])
        for entry in data.get("data", []):
            if entry.get("name") == queue:
                return dict(entry)
        return None

    def stranded(self, *queues: str) -> dict[str, int]:
        """Per Kew queue, the deliveries the broker counts as in delivery but no consumer holds.

        A consumer's connection that fails mid-delivery can leave one so
        (``kew.providers.artemis.management``); only a restart brings it back.
        """
        provider = ArtemisProvider(self.url)
        try:
            with provider.management() as management:
                return {queue: stranded(management, queue) for queue in queues}
        finally:
            provider.close()

    def describe(self, *queues: str) -> str:
        """Return ``artemis queue stat`` and the stranded deliveries of ``queues`` (a diagnosis)."""
        stat = self.cli("queue", "stat", "--maxRows", "1000", timeout=60).stdout
        try:
            held = f"{self.stranded(*queues)}"
        except Exception as error:  # noqa: BLE001 - a diagnosis must not hide the failure
            held = f"unknown ({error!r})"
        return f"{stat}\nin delivery to no consumer (back only after a broker restart): {held}"

    def restart_for_stranded(self, queue: str, missing: int) -> bool:
        """Restart the broker if its stranded deliveries of ``queue`` are the ``missing`` ones.

        The operator's remedy for an Artemis bug (docs/artemis.md, "Known
        broker issue: stranded deliveries"). Only when exactly ``missing``
        deliveries of Kew queue ``queue`` are stranded does it warn and
        restart (a clean stop and start) and return True. Otherwise
        (something else is wrong, or a broker given by URL) it returns
        False and leaves the broker be: the caller fails as it would have.
        """
        try:
            count = self.stranded(queue)[queue]
        except Exception:  # noqa: BLE001 - the caller's own failure says more, with describe()
            return False
        if count == 0 or count != missing or not self.controllable:
            return False
        warnings.warn(
            f"Artemis stranded {count} delivery(ies) of queue {queue!r} that a killed consumer "
            "held (the broker's race between a STOMP connection's failure listener and its "
            "cleanup, docs/artemis.md); restarting the broker, as an operator would",
            stacklevel=2,
        )
        self.restart()
        return True


def java_env() -> dict[str, str]:
    """The environment for ``bin/artemis``, without a stray ``JAVA_ARGS``.

    An instance's ``etc/artemis.profile`` holds the JVM options it was made with.
    """
    env = dict(os.environ)
    env.pop("JAVA_ARGS", None)
    return env
