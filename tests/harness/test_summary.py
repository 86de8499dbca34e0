"""The run's closing count of skips, and the exit status of a partial run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.summary import Skips

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
import pytest

from tests.harness.services import service_missing, service_unsupported


def test_needs_thing():
    service_missing("Thing", "`apt-get install thing`")


def test_needs_thing_too():
    service_missing("Thing", "`apt-get install thing`")


def test_kills_the_broker():
    service_unsupported("cannot kill the broker given by KEW_TEST_THING_URL")


def test_needs_a_capability():
    pytest.skip("provider declares no duplicate detection")


def test_passes():
    pass
"""


def run_sample(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run SAMPLE in a pytest of its own, with the summary plugin and ``env``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    environ = {k: v for k, v in os.environ.items() if k not in {"CI", "KEW_TEST_PARTIAL"}}
    environ.update(env, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "pytest", "-p", "tests.harness.summary", "-p", "no:django"]
    command += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", "pytest.ini"]
    return subprocess.run(
        [*command, "test_sample.py"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_skips_are_counted_by_kind_and_reason() -> None:
    skips = Skips()
    skips.add("t.py::a", "service missing: Thing not available: `apt-get install thing`")
    skips.add("t.py::b", "service missing: Thing not available: `apt-get install thing`")
    skips.add("t.py::c", "service given by URL: cannot kill the broker")
    skips.add("t.py::d", "provider declares no duplicate detection")
    assert skips.lines() == [
        "2 skipped, a service is missing: Thing not available: `apt-get install thing`",
        "1 skipped: provider declares no duplicate detection",
        "1 crash/outage tests not run: the service is given by URL, so these guarantees"
        " went untested:",
        "    t.py::c (cannot kill the broker)",
    ]


def test_a_run_without_skips_says_so() -> None:
    assert Skips().lines() == ["nothing skipped"]


def test_a_run_that_skipped_for_a_missing_service_fails_outside_ci(tmp_path: Path) -> None:
    result = run_sample(tmp_path)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "1 passed, 4 skipped" in result.stdout
    assert "2 skipped, a service is missing: Thing not available" in result.stdout
    assert "1 skipped: provider declares no duplicate detection" in result.stdout
    assert "1 crash/outage tests not run: the service is given by URL" in result.stdout
    assert "test_sample.py::test_kills_the_broker (cannot kill the broker" in result.stdout
    assert "FAILED: 2 tests skipped for missing services" in result.stdout
    assert "make test-partial (KEW_TEST_PARTIAL=1)" in result.stdout


def test_a_partial_run_chosen_explicitly_passes(tmp_path: Path) -> None:
    result = run_sample(tmp_path, KEW_TEST_PARTIAL="1")
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "2 skipped, a service is missing: Thing not available" in result.stdout
    assert "A partial run (KEW_TEST_PARTIAL=1): 2 tests skipped" in result.stdout


def test_on_ci_a_missing_service_fails_its_tests_and_url_skips_are_still_listed(
    tmp_path: Path,
) -> None:
    result = run_sample(tmp_path, CI="true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "2 failed, 1 passed, 2 skipped" in result.stdout
    assert "a service is missing" not in result.stdout
    assert "test_sample.py::test_kills_the_broker (cannot kill the broker" in result.stdout
