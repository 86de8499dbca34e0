"""The process record of a long-running Kew process: its ``KewProcess`` row, for ``kew_status``.

``ProcessRecord`` writes the row at start, then every ``interval`` seconds
from a daemon thread of its own (one UPDATE; a database error is logged
and tried again next time), and deletes it at ``close``. A process that
dies leaves its row, which then ages: ``kew_status`` shows only rows seen
recently, and rows not seen for a day are deleted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta

from django.utils import timezone

from kew_django.db.connections import close_db_connections
from kew_django.identity import host, process_id
from kew_django.models import KewProcess

log = logging.getLogger(__name__)
FORGET_AFTER = timedelta(days=1)


class ProcessRecord:
    """Keep this process's ``KewProcess`` row fresh; ``in_progress()`` gives queue -> count."""

    def __init__(
        self,
        *,
        kind: str,
        queues: list[str],
        interval: float = 15.0,
        in_progress: Callable[[], dict[str, int]] = dict,
    ):
        now = timezone.now()
        self.name = f"{process_id()}:{now:%Y%m%dT%H%M%S}"  # a pid is reused, a start time not
        self.row = KewProcess(
            name=self.name, kind=kind, host=host(), pid=os.getpid(), queues=queues, started_at=now
        )
        self.interval = interval
        self.in_progress = in_progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kew-process-record", daemon=True)

    def start(self) -> ProcessRecord:
        """Write the row and start the thread; return self."""
        self._thread.start()
        return self

    def beat(self) -> None:
        """Write the row now (on the calling thread's connection)."""
        self.row.seen_at = timezone.now()
        self.row.in_progress = {q: n for q, n in dict(self.in_progress()).items() if n}
        if self.row.pk is None:
            self.row.save(force_insert=True)
            KewProcess.objects.filter(seen_at__lt=self.row.seen_at - FORGET_AFTER).delete()
        elif not KewProcess.objects.filter(pk=self.row.pk).update(
            seen_at=self.row.seen_at, in_progress=self.row.in_progress
        ):
            self.row.pk = None  # deleted meanwhile (forgotten, or a test): write it again
            self.beat()

    def _run(self) -> None:
        try:
            while True:
                try:
                    self.beat()
                except Exception as error:  # noqa: BLE001 - tried again next time
                    log.warning("process record %s not written: %s", self.name, error)
                    close_db_connections()
                if self._stop.wait(self.interval):
                    break
            if self.row.pk is not None:
                KewProcess.objects.filter(pk=self.row.pk).delete()
        except Exception as error:  # noqa: BLE001 - the row then ages out
            log.debug("process record %s not removed: %s", self.name, error)
        finally:
            close_db_connections()

    def close(self) -> None:
        """Stop the thread and delete the row."""
        self._stop.set()
        self._thread.join(10)
