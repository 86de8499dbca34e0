"""Pytest plugin: end every run with what was skipped and why; fail a partial run.

Loaded by :mod:`tests.harness.fixtures`. The run's last section counts its
skips grouped by reason, in three kinds, told apart by the reason prefixes
of :mod:`tests.harness.services`:

- a service is missing (:func:`~tests.harness.services.service_missing`):
  outside CI the run then exits non-zero, as a failed run does, unless the
  partial run was chosen (``KEW_TEST_PARTIAL=1``, ``make test-partial``); on
  CI such a test has already failed;
- a crash or outage test did not run because its server is given by URL
  (:func:`~tests.harness.services.service_unsupported`): listed test by
  test, never fatal, since the URL was a deliberate choice;
- any other skip (a provider declaring no duplicate detection): counted only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.harness.services import GIVEN_BY_URL, MISSING, on_ci

PARTIAL_ENV = "KEW_TEST_PARTIAL"


@dataclass
class Skips:
    """The run's skips, sorted into the three kinds of the module docstring."""

    missing: Counter[str] = field(default_factory=Counter)
    given_by_url: list[tuple[str, str]] = field(default_factory=list)
    other: Counter[str] = field(default_factory=Counter)

    def add(self, nodeid: str, reason: str) -> None:
        """Count one skipped test with its skip ``reason``."""
        if reason.startswith(MISSING):
            self.missing[reason.removeprefix(MISSING)] += 1
        elif reason.startswith(GIVEN_BY_URL):
            self.given_by_url.append((nodeid, reason.removeprefix(GIVEN_BY_URL)))
        else:
            self.other[reason] += 1

    def lines(self) -> list[str]:
        """The summary, one line per reason (the URL-given tests listed)."""
        lines = [f"{n} skipped, a service is missing: {why}" for why, n in self.missing.items()]
        lines += [f"{n} skipped: {why}" for why, n in self.other.items()]
        if self.given_by_url:
            lines.append(
                f"{len(self.given_by_url)} crash/outage tests not run: the service is given"
                " by URL, so these guarantees went untested:"
            )
            lines += [f"    {nodeid} ({why})" for nodeid, why in self.given_by_url]
        return lines or ["nothing skipped"]


def partial_chosen() -> bool:
    """Did the caller choose a partial run (``KEW_TEST_PARTIAL=1``)?"""
    return os.environ.get(PARTIAL_ENV, "").strip().lower() in {"1", "true", "yes"}


def skip_reason(report: pytest.TestReport) -> str:
    """Return the reason a skipped test's report gives."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def collect(terminalreporter: pytest.TerminalReporter) -> Skips:
    """Sort the skips the terminal reporter has seen (``xfail`` is not a skip)."""
    skips = Skips()
    for report in terminalreporter.stats.get("skipped", []):
        if not hasattr(report, "wasxfail"):
            skips.add(report.nodeid, skip_reason(report))
    return skips


_skips_key = pytest.StashKey[Skips]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail a run outside CI that skipped tests for a missing service, unless chosen."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skips = session.config.stash[_skips_key] = collect(reporter)
    if skips.missing and not on_ci() and not partial_chosen() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# The outermost wrapper: printed after pytest's own short summary, just above the count line.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> Iterator[None]:
    """Print the skips by reason, and why a partial run failed."""
    yield
    skips = config.stash.get(_skips_key, None)
    if skips is None:
        return
    terminalreporter.write_sep("=", "skipped, and why")
    for line in skips.lines():
        terminalreporter.write_line(line)
    if skips.missing and not on_ci():
        count = sum(skips.missing.values())
        if partial_chosen():
            terminalreporter.write_line(
                f"A partial run ({PARTIAL_ENV}=1): {count} tests skipped for missing services.",
                yellow=True,
            )
        else:
            terminalreporter.write_line(
                f"FAILED: {count} tests skipped for missing services. Install what is named"
                f" above, or choose a partial run: make test-partial ({PARTIAL_ENV}=1).",
                red=True,
                bold=True,
            )
