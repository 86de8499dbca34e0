"""Who does the work: the one format of a process's and a worker thread's id.

A process is ``host:pid``; a worker thread is ``host:pid/thread-name``.
They are shown in the admin (who holds a delivery, who ran a task) and in
``kew_status`` (the process records).
"""

from __future__ import annotations

import functools
import os
import socket
import threading

# Fits every column that stores an id (InProgress.worker, KewProcess.name: 200).
MAX_LENGTH = 100


@functools.cache
def host() -> str:
    """Return this machine's host name (read once: workers ask for it per delivery)."""
    return socket.gethostname()


def process_id() -> str:
    """Return this process's id: ``host:pid``."""
    return f"{host()}:{os.getpid()}"[:MAX_LENGTH]


def worker_id() -> str:
    """Return the calling thread's id: ``host:pid/thread-name``."""
    return f"{host()}:{os.getpid()}/{threading.current_thread().name}"[:MAX_LENGTH]
