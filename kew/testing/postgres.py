"""A real PostgreSQL server for tests.

:class:`PostgresServer` gets a server in this order:

1. ``KEW_TEST_POSTGRES_URL`` (``postgresql://user:pass@host:port/db``), used
   as is after checking that it answers;
2. a Docker container (testcontainers), if a Docker engine answers a ping;
3. a throwaway cluster made with the local server binaries (``initdb``,
   ``pg_ctl``, ``postgres``) in a temp dir, on a free port of 127.0.0.1,
   with ``fsync=off`` and trust authentication. When running as root the
   server runs as the unprivileged ``postgres`` user (initdb refuses root).

If none is possible :class:`~kew.testing.services.ServiceUnavailable` says
what to install. This module never imports Django.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from kew.testing.services import (
    ServiceStartError,
    ServiceUnavailable,
    docker_available,
    free_port,
)

__all__ = ["PostgresServer", "find_postgres_bindir"]

ENV_URL = "KEW_TEST_POSTGRES_URL"
ENV_BINDIR = "KEW_TEST_POSTGRES_BINDIR"
DEFAULT_IMAGE = "postgres:16-alpine"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
    "`apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server` (Fedora), "
    f"or set {ENV_URL}=postgresql://user:password@host:port/dbname, or run a Docker engine"
)


def _has_server_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in SERVER_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> numeric version for sorting
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Looks at ``$KEW_TEST_POSTGRES_BINDIR``, ``pg_config --bindir``, the highest
    ``/usr/lib/postgresql/*/bin`` (Debian) and finally ``PATH``.
    """
    candidates: list[Path] = []
    if os.environ.get(ENV_BINDIR):
        candidates.append(Path(os.environ[ENV_BINDIR]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        candidates.append(Path(bindir))
    initdb = shutil.which("initdb")
    if initdb:
        # /usr/local/bin/initdb may be a symlink into the real bindir
        candidates.append(Path(initdb).resolve().parent)
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if _has_server_binaries(candidate):
            return candidate
    return None


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


class PostgresServer:
    """A PostgreSQL server for tests: ``start()``, use ``url``, ``stop()``.

    Attributes (valid after :meth:`start`): ``url``
    (``postgresql://user[:password]@host:port/dbname``), ``host``, ``port``,
    ``user``, ``password`` (None with trust auth), ``dbname``, ``superuser``
    (a role allowed to create databases, e.g. for pytest-django's test
    databases: the same as ``user`` here), ``mode`` (``"url"``, ``"docker"``
    or ``"local"``), ``data_dir`` and ``log_path`` (local mode only).
    """

    def __init__(
        self,
        *,
        dbname: str = "kew",
        superuser: str = "postgres",
        image: str = DEFAULT_IMAGE,
        start_timeout: float = 60.0,
        max_connections: int = 200,
        use_docker: bool | None = None,
    ) -> None:
        self.dbname = dbname
        self.superuser = superuser
        self.user = superuser
        self.password: str | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.image = image
        self.start_timeout = start_timeout
        self.max_connections = max_connections
        self.use_docker = use_docker
        self.mode: str | None = None
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self._tmp: Path | None = None
        self._bindir: Path | None = None
        self._run_as: Any = None  # pwd.struct_passwd when running as root
        self._container: Any = None
        self._started = False

    # ------------------------------------------------------------------ API

    @property
    def url(self) -> str:
        """``postgresql://user[:password]@host:port/dbname``."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def url_for(self, dbname: str) -> str:
        """The same server, another database."""
        base = urlsplit(self.url)
        return base._replace(path="/" + quote(dbname, safe="")).geturl()

    def start(self) -> PostgresServer:
        """Get a server (see the module doc for the order). Idempotent."""
        if self._started:
            return self
        if os.environ.get(ENV_URL):
            self._start_from_url(os.environ[ENV_URL])
        elif (self.use_docker is not False) and docker_available():
            self._start_docker()
        else:
            self._start_local()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server and delete everything the harness created."""
        atexit.unregister(self.stop)
        self._started = False
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):
                container.stop()
        if self._tmp is not None:
            self._pg_ctl_stop()
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    close = stop

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def connect(self, dbname: str | None = None, **kwargs: Any) -> Any:
        """A new psycopg connection (to ``dbname`` or the server's database)."""
        import psycopg

        url = self.url_for(dbname) if dbname else self.url
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(url, **kwargs)

    def create_database(self, dbname: str) -> None:
        """``CREATE DATABASE dbname`` (no error if it exists)."""
        from psycopg import errors, sql

        with (
            self.connect("postgres", autocommit=True) as conn,
            contextlib.suppress(errors.DuplicateDatabase),
        ):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))

    def django_database(self, **extra: Any) -> dict[str, Any]:
        """A ``settings.DATABASES`` entry for this server (plain dict, no Django import)."""
        entry: dict[str, Any] = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.dbname,
            "USER": self.user,
            "PASSWORD": self.password or "",
            "HOST": self.host,
            "PORT": str(self.port),
        }
        entry.update(extra)
        return entry

    def log_tail(self, n: int = 50) -> str:
        """The last ``n`` lines of the server log (empty if there is none)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                out, err = self._container.get_logs()
                text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
                return "\n".join(text.splitlines()[-n:])
            return ""
        if self.log_path and self.log_path.exists():
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        return ""

    def __repr__(self) -> str:
        return f"<PostgresServer mode={self.mode} url={_redact(self.url) if self.port else None}>"

    # ------------------------------------------------------------ url mode

    def _start_from_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ServiceStartError(f"{ENV_URL} must be a postgresql:// URL, got {_redact(url)}")
        self.mode = "url"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = unquote(parts.username or "") or self.superuser
        self.superuser = self.user
        self.password = unquote(parts.password) if parts.password is not None else None
        self.dbname = unquote(parts.path.lstrip("/")) or self.dbname
        try:
            with self.connect() as conn:
                conn.execute("select 1")
        except Exception as exc:
            raise ServiceStartError(
                f"{ENV_URL}={_redact(url)} does not accept connections: {exc}"
            ) from exc

    # --------------------------------------------------------- docker mode

    def _start_docker(self) -> None:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # older testcontainers layout
            from testcontainers.postgres import PostgresContainer

        self.mode = "docker"
        self.user = self.superuser = "kew"
        self.password = "kew"
        container = PostgresContainer(
            self.image,
            username=self.user,
            password=self.password,
            dbname=self.dbname,
            driver=None,
        )
        container.with_command(
            f"postgres -c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            f"-c max_connections={self.max_connections}"
        )
        container.start()
        self._container = container
        atexit.register(self.stop)
        self.host = container.get_container_host_ip()
        self.port = int(container.get_exposed_port(5432))

    # ---------------------------------------------------------- local mode

    def _start_local(self) -> None:
        bindir = find_postgres_bindir()
        if bindir is None:
            raise ServiceUnavailable("PostgreSQL", INSTALL_HINT)
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ServiceUnavailable(
                "PostgreSQL", "psycopg is needed: `pip install 'psycopg[binary]'`"
            ) from exc
        self.mode = "local"
        self._bindir = bindir
        self._run_as = self._unprivileged_user()
        self.user = self.superuser
        self.password = None

        tmp = Path(tempfile.mkdtemp(prefix="kew-pg-"))
        self._tmp = tmp
        atexit.register(self.stop)
        self.data_dir = tmp / "data"
        self.log_path = tmp / "server.log"
        (tmp / "sock").mkdir()
        if self._run_as is not None:
            for path in (tmp, tmp / "sock"):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            self._initdb()
            self._launch()
            self.create_database(self.dbname)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _unprivileged_user() -> Any:
        """None if not root; else the account to run the server as."""
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

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = dict(os.environ)
        env.pop("PGDATA", None)
        if self._run_as is not None:
            kwargs.update(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
            env["HOME"] = str(self._tmp)
            env["USER"] = env["LOGNAME"] = self._run_as.pw_name
        return subprocess.run(
            args,
            cwd=self._tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def _initdb(self) -> None:
        assert self._bindir is not None and self.data_dir is not None
        result = self._run(
            [
                str(self._bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self._tmp / 'sock'}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": str(self.max_connections),
            "logging_collector": "off",
        }
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# kew.testing\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def _launch(self) -> None:
        assert self._bindir is not None and self.data_dir is not None and self.log_path is not None
        last_error = ""
        for _attempt in range(3):
            self.port = free_port(self.host)
            result = self._run(
                [
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                    "-o",
                    f"-p {self.port}",
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "start",
                ],
                timeout=self.start_timeout + 30,
            )
            if result.returncode == 0 and self._wait_connectable():
                return
            last_error = f"pg_ctl start exited {result.returncode}:\n{result.stdout}{result.stderr}"
            log = self.log_tail(40)
            self._pg_ctl_stop()
            if "already in use" not in log:  # only a port race is worth another try
                break
        raise ServiceStartError(
            f"PostgreSQL did not start.\n{last_error}\nServer log:\n{self.log_tail(60)}"
        )

    def _wait_connectable(self) -> bool:
        import psycopg

        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return True
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)

    def _pg_ctl_stop(self) -> None:
        if self._bindir is None or self.data_dir is None:
            return
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            result = self._run(
                [
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                timeout=60,
            )
            stopped = result.returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped and pid_file.exists():
            with contextlib.suppress(ValueError, OSError, IndexError):
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, signal.SIGKILL)
