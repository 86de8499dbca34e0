"""Build Kew's wheel once per session, from a copy of the working tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Left out of the copy: only at the top, where they are tool output, not source.
NOT_SOURCE = {".git", ".venv", "build", "dist", "var", ".pytest_cache", ".ruff_cache"}


def ignore_tool_output(directory: str, names: list[str]) -> set[str]:
    """Skip the repository's tool output and virtualenv (shutil.copytree's ignore hook)."""
    if Path(directory) != ROOT:
        return set()
    return {name for name in names if name in NOT_SOURCE or name.endswith(".egg-info")}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """Return the path of a wheel built from the working tree, as `make` would ship it.

    The tree is copied first, so that setuptools' build/ and egg-info
    directories (which can keep modules deleted since) never leak in, and
    the build writes nothing into the repository.
    """
    source = tmp_path_factory.mktemp("source") / "kew"
    shutil.copytree(ROOT, source, ignore=ignore_tool_output)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, source]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    (built,) = out.glob("kew-*.whl")
    return built


@pytest.fixture(scope="session")
def wheel_names(wheel) -> list[str]:
    """Return every file name in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="session")
def metadata(wheel):
    """Return the wheel's METADATA as an email.message.Message."""
    from email.parser import Parser

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())
