"""What every PostgreSQL server of the harness offers, wherever it comes from."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tests.harness.lifecycle import Server

__all__ = ["DEFAULT_IMAGE", "PostgresServer", "redact"]

DEFAULT_IMAGE = "postgres:16-alpine"


class PostgresServer(Server):
    """A PostgreSQL server for tests, with the lifecycle of :mod:`tests.harness.lifecycle`.

    ``PostgresServer(**options)`` returns the subclass for the source that
    :func:`tests.harness.postgres.pick_source` picks (as ``pathlib.Path()``
    returns a ``PosixPath``): :class:`~tests.harness.postgres.url.UrlPostgres`,
    :class:`~tests.harness.postgres.docker.DockerPostgres` or
    :class:`~tests.harness.postgres.local.LocalPostgres`. Nothing starts before
    :meth:`start`.

    Attributes (valid after :meth:`start`): ``url``
    (``postgresql://user[:password]@host:port/dbname``), ``host``, ``port``,
    ``user``, ``password`` (None with trust auth), ``dbname``, ``superuser``
    (a role allowed to create databases, e.g. for pytest-django's test
    databases: the same as ``user`` here), ``mode``; ``data_dir`` and
    ``log_path`` for local servers (else None).
    """

    def __new__(cls, **options: Any) -> PostgresServer:
        chosen = cls
        if cls is PostgresServer:
            from tests.harness.postgres import pick_source

            chosen = pick_source(use_docker=options.get("use_docker"))
        return super().__new__(chosen)

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
        self.data_dir: Path | None = None
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        """``postgresql://user[:password]@host:port/dbname``."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def url_for(self, dbname: str) -> str:
        """The same server, another database."""
        return urlsplit(self.url)._replace(path="/" + quote(dbname, safe="")).geturl()

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

    def wait_connectable(self, timeout: float) -> bool:
        """Poll until database ``postgres`` accepts a connection; False on timeout."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return True
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={redact(self.url) if self.port else None}>"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{netloc}").geturl()
