"""The Apache Artemis binary distribution, fetched once into a cache.

The Maven artifact ``org.apache.activemq:apache-artemis:<version>:tar.gz:bin``
is fetched with ``mvn dependency:copy`` into ``<cache>/artemis-dl/`` and
unpacked once into ``<cache>/artemis/apache-artemis-<version>``, where
``<cache>`` is ``$KEW_CACHE_DIR`` or ``~/.cache/kew`` (never the repository).
Several processes may do it at once: a file lock and atomic renames keep
them apart.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.harness.services import ServiceStartError, ServiceUnavailable

__all__ = ["ARTEMIS_VERSION", "INSTALL_HINT", "cache_dir", "ensure_distribution", "find_java"]

ARTEMIS_VERSION = "2.40.0"
ENV_HOME = "KEW_TEST_ARTEMIS_HOME"
ENV_CACHE = "KEW_CACHE_DIR"

INSTALL_HINT = (
    "Java 17+ and Maven are needed to fetch and run the broker: "
    "`apt-get install openjdk-17-jre-headless maven` (Debian/Ubuntu), "
    "or set KEW_TEST_ARTEMIS_URL=artemis://user:password@host:61613, or run a Docker engine"
)


def cache_dir() -> Path:
    """``$KEW_CACHE_DIR`` or ``~/.cache/kew``: downloads live here, never in the repo."""
    configured = os.environ.get(ENV_CACHE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "kew"


def find_java() -> str | None:
    """``$JAVA_HOME/bin/java`` or ``java`` on ``PATH`` (None if there is neither)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


def ensure_distribution(version: str = ARTEMIS_VERSION) -> Path:
    """The unpacked Artemis distribution (``ARTEMIS_HOME``), fetched if needed.

    ``$KEW_TEST_ARTEMIS_HOME`` names an existing distribution to use instead.
    Raises :class:`~tests.harness.services.ServiceUnavailable` when Maven is
    needed and missing.
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


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
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
