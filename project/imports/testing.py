"""A scripted importer for tests and demonstrations: the path name picks the behaviour.

- a path containing ``permanent`` fails permanently;
- ``transient-N`` fails transiently on its first N attempts, then succeeds;
- ``slow`` sleeps ``SLOW_SECONDS`` before working;
- ``stall`` waits until a file ``<name>.release`` appears beside the source
  (at most ``STALL_SECONDS``): a test can kill the worker in mid-import;
- ``long-S`` (S seconds, e.g. ``long-12`` or ``long-0.5``) waits S seconds
  before each file, reporting progress every 0.1 s (so it can be cancelled),
  and records its runs beside the source: ``<name>.runs`` gets one line per
  run (pid, start time), ``<name>.overlaps`` one per run that started while
  another live process was running the same import;
- anything else is imported as the FilesystemImporter would.

Select it with ``IMPORT_IMPORTER=project.imports.testing.ScriptedImporter``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from project.imports.importer import (
    FileRecord,
    FilesystemImporter,
    ImportJob,
    Meter,
    PermanentImportError,
    TransientImportError,
)

TRANSIENT = re.compile(r"transient-(\d+)")
LONG = re.compile(r"long-(\d+(?:\.\d+)?)")
SLOW_SECONDS = 1.0
STALL_SECONDS = 30.0


class ScriptedImporter(FilesystemImporter):
    """Fail as the source's name says; keyed on ``job.attempt``, so it survives restarts."""

    def run(self, job: ImportJob) -> list[FileRecord]:
        name = job.source.name
        if "slow" in name:
            time.sleep(SLOW_SECONDS)
        if "stall" in name:
            release = job.source.with_name(f"{name}.release")
            deadline = time.monotonic() + STALL_SECONDS
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if "permanent" in name:
            raise PermanentImportError(f"{name} is scripted to fail permanently")
        match = TRANSIENT.search(name)
        if match and job.attempt <= int(match[1]):
            raise TransientImportError(
                f"{name} is scripted to fail transiently (attempt {job.attempt} of {match[1]})"
            )
        if LONG.search(name):
            with recorded_run(job.source):
                return super().run(job)
        return super().run(job)

    def before_file(self, job: ImportJob, meter: Meter) -> None:
        match = LONG.search(job.source.name)
        if not match:
            return
        deadline = time.monotonic() + float(match[1])
        while time.monotonic() < deadline:
            meter.report()  # raises kew_django.Cancelled once the import is to stop
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def alive(pid: int) -> bool:
    """Return whether process ``pid`` runs (a SIGKILLed worker's stale marker is not a run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def recorded_run(source: Path) -> Iterator[None]:
    """Record this run in ``<name>.runs``, and in ``<name>.overlaps`` if another one is live."""
    marker = source.with_name(f"{source.name}.running-{os.getpid()}-{time.monotonic_ns()}")
    marker.touch()  # first, so that of two runs starting together each sees the other
    others = [
        path
        for path in source.parent.glob(f"{source.name}.running-*")
        if path != marker and alive(int(path.name.rsplit("-", 2)[1]))
    ]
    line = f"{os.getpid()} {time.time():.3f}\n"
    with source.with_name(f"{source.name}.runs").open("a") as runs:
        runs.write(line)
    if others:
        with source.with_name(f"{source.name}.overlaps").open("a") as overlaps:
            overlaps.write(f"{line.strip()} overlaps {', '.join(p.name for p in others)}\n")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)
