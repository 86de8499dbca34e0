"""Which tests a pass selects (tests/conftest.py): the two CI legs together select every test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import pytest


def test_everywhere():
    pass


@pytest.mark.one_leg(1)
def test_in_leg_1():
    pass


@pytest.mark.one_leg(2)
def test_in_leg_2():
    pass


@pytest.mark.postgresql_only
@pytest.mark.one_leg(2)
def test_on_postgresql_in_leg_2():
    pass
"""


def collect(tmp_path: Path, sample: str = SAMPLE, **env: str) -> subprocess.CompletedProcess[str]:
    """Collect ``sample`` in a pytest of its own with tests/conftest.py as a plugin, and ``env``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    one_leg\n    postgresql_only\n")
    (tmp_path / "test_sample.py").write_text(sample)
    unset = {"CI", "KEW_TEST_LEG", "KEW_TEST_DATABASE"}
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    environ.update(env, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:django"]
    command += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "pytest.ini"]
    return subprocess.run(
        [*command, "--collect-only", "-q", "test_sample.py"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def selected(run: subprocess.CompletedProcess[str]) -> set[str]:
    assert run.returncode == 0, run.stdout + run.stderr
    return {line.split("::")[1] for line in run.stdout.splitlines() if "::" in line}


def test_the_two_legs_together_select_what_a_run_without_a_leg_selects(tmp_path: Path) -> None:
    every = collect(tmp_path)
    first, second = collect(tmp_path, KEW_TEST_LEG="1"), collect(tmp_path, KEW_TEST_LEG="2")
    assert selected(every) == {"test_everywhere", "test_in_leg_1", "test_in_leg_2"}
    assert selected(first) | selected(second) == selected(every)
    assert selected(first) & selected(second) == {"test_everywhere"}
    assert "left to the other leg" not in every.stdout
    # the PostgreSQL-only test is counted for the database, not for the leg
    assert "1 deselected: they are PostgreSQL-only" in first.stdout
    assert "1 left to the other leg: long process tests run in one CI leg only" in first.stdout
    assert "(KEW_TEST_LEG=2 runs them)" in first.stdout
    assert "1 left to the other leg" in second.stdout
    assert "(KEW_TEST_LEG=1 runs them)" in second.stdout


def test_a_leg_other_than_1_or_2_and_a_marker_without_its_leg_are_usage_errors(
    tmp_path: Path,
) -> None:
    run = collect(tmp_path, KEW_TEST_LEG="3")
    assert run.returncode == 4  # pytest's usage error
    assert "KEW_TEST_LEG='3': expected 1 or 2" in run.stderr
    run = collect(tmp_path, SAMPLE.replace("one_leg(1)", "one_leg"))
    assert run.returncode == 4
    assert "test_sample.py::test_in_leg_1: the one_leg marker takes its leg" in run.stderr
