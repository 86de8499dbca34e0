"""Find the local PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``)."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["ENV_BINDIR", "INSTALL_HINT", "find_postgres_bindir"]

ENV_BINDIR = "KEW_TEST_POSTGRES_BINDIR"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: "
    "`apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server` (Fedora), "
    "or set KEW_TEST_POSTGRES_URL=postgresql://user:password@host:port/dbname, "
    "or run a Docker engine"
)


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
        if all(os.access(candidate / name, os.X_OK) for name in SERVER_BINARIES):
            return candidate
    return None


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> numeric version for sorting
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)
