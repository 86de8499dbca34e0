"""A scripted importer for tests and demonstrations: the path name picks the behaviour.

- a path containing ``permanent`` fails permanently;
- ``transient-N`` fails transiently on its first N attempts, then succeeds;
- ``slow`` sleeps ``SLOW_SECONDS`` before working;
- ``stall`` waits until a file ``<name>.release`` appears beside the source
  (at most ``STALL_SECONDS``): a test can kill the worker in mid-import;
- anything else is imported as the FilesystemImporter would.

Select it with ``IMPORT_IMPORTER=project.imports.testing.ScriptedImporter``.
"""

from __future__ import annotations

import re
import time

from project.imports.importer import (
    FileRecord,
    FilesystemImporter,
    ImportJob,
    PermanentImportError,
    TransientImportError,
)

TRANSIENT = re.compile(r"transient-(\d+)")
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
        return super().run(job)
