"""The wheel, installed alone in a fresh virtualenv, gives a working core."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare_python(wheel, tmp_path_factory):
    """Return the python of a new virtualenv holding Kew's wheel and nothing else."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    subprocess.run([*install, "--no-deps", "--no-index", wheel], check=True)
    return python


def run(python, code: str, cwd) -> subprocess.CompletedProcess:
    """Run code in isolated mode (no cwd, no PYTHONPATH, no user site on sys.path)."""
    return subprocess.run([python, "-I", "-c", code], cwd=cwd, capture_output=True, text=True)


def test_core_imports_with_no_dependency_installed(bare_python, tmp_path):
    code = "import kew, kew.qchan, kew.providers.memory; print(kew.__file__)"
    result = run(bare_python, code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(bare_python.parent.parent))


@pytest.mark.parametrize("module", ["django", "stomp", "psycopg", "environ", "project", "tests"])
def test_nothing_else_is_installed(bare_python, tmp_path, module):
    result = run(bare_python, f"import {module}", tmp_path)
    assert f"No module named '{module}'" in result.stderr
