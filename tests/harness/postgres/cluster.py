"""A database cluster in a directory of its own, driven by ``initdb`` and ``pg_ctl``.

Layout: ``<dir>/data`` (the cluster), ``<dir>/server.log``, ``<dir>/sock``
(the Unix socket). As root every command runs as the unprivileged
``postgres`` user (``initdb`` refuses root), who is given the directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness.services import ServiceStartError, ServiceUnavailable

__all__ = ["Cluster"]


class Cluster:
    """The cluster in ``directory``, made and run with the binaries in ``bindir``."""

    def __init__(self, bindir: Path, directory: Path) -> None:
        self.bindir = bindir
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_path = directory / "server.log"
        self._run_as = _unprivileged_user()
        (directory / "sock").mkdir(exist_ok=True)
        if self._run_as is not None:
            for path in (directory, directory / "sock"):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def initdb(self, superuser: str, max_connections: int) -> None:
        """Make the cluster: trust auth, no locale, UTF8, fast and unsafe settings."""
        result = self._run(
            [
                str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", superuser,
                "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync",
            ],
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceStartError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.directory / 'sock'}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": str(max_connections),
            "logging_collector": "off",
        }
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# tests.harness\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self, port: int, timeout: float) -> subprocess.CompletedProcess[str]:
        """``pg_ctl start`` on ``port``, waiting up to ``timeout`` s; the caller checks it."""
        return self._run(
            [
                str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
                "-o", f"-p {port}", "-w", "-t", str(int(timeout)), "start",
            ],
            timeout=timeout + 30,
        )  # fmt: skip

    def stop(self, timeout: float = 60.0) -> None:
        """``pg_ctl stop -m fast``; SIGKILL if that fails. The cluster stays."""
        if self.pid() is None:
            return
        try:
            result = self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w",
                 "-t", str(int(timeout)), "stop"],
                timeout=timeout + 30,
            )  # fmt: skip
            stopped = result.returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server and its backends (a crash); wait until they are gone."""
        pid = self.pid()
        if pid is None:
            return
        # Each backend runs in a session of its own (PostgreSQL calls setsid), so the
        # postmaster's group is not the server: its children, listed first, are killed
        # one by one, so that none of them commits after the crash. SIGCONT: a stopped
        # process (a test may pause one) dies only once it runs again on some kernels.
        children = [int(fields[0]) for fields in _proc_stats() if int(fields[2]) == pid]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
                os.kill(child, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            _group_alive(pid) or any(_alive(child) for child in children)
        ):
            time.sleep(0.05)
        # the dead postmaster may linger as a zombie nobody reaps, which makes the
        # next server refuse its lock files: the crash recovery itself is PostgreSQL's
        for lock in [self.data_dir / "postmaster.pid", *(self.directory / "sock").glob("*")]:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def pid(self) -> int | None:
        """The running postmaster's pid (None if no server runs on this cluster)."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            if _alive(pid):
                return pid
        return None

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = dict(os.environ)
        env.pop("PGDATA", None)
        if self._run_as is not None:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
            env["HOME"] = str(self.directory)
            env["USER"] = env["LOGNAME"] = self._run_as.pw_name
        return subprocess.run(
            args,
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )


def _unprivileged_user() -> Any:
    """None if not root; else the ``pwd`` entry to run the server as."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceUnavailable(
        "PostgreSQL",
        "running as root and there is no unprivileged 'postgres' user to run the server as: "
        "`apt-get install postgresql` creates it (or `useradd --system postgres`)",
    )


def _proc_stats() -> list[list[str]]:
    """``/proc/<pid>/stat`` fields after the command name, for every process."""
    stats = []
    for path in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            stats.append([path.parent.name, *path.read_text().rsplit(")", 1)[1].split()])
    return stats


def _alive(pid: int) -> bool:
    """Does ``pid`` run (a zombie nobody reaped does not count)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _group_alive(pgid: int) -> bool:
    """Does process group ``pgid`` have a live member?"""
    if not Path("/proc").is_dir():
        return _alive(pgid)
    return any(int(fields[3]) == pgid and fields[1] != "Z" for fields in _proc_stats())
